-- The adapters trained on one dataset date, newest first (index model_registry_dataset_date).
-- Columns in the order of registry.Adapter.
SELECT adapter_id, created_at, metrics_json, safety_flags, status, dataset_date, artifact_uri,
       artifact_sha256, base_model, promoted_at, superseded_at, archived_at, gate_passed,
       gate_reason, gate_decided_at
  FROM pria.model_registry
 WHERE dataset_date = %(date)s
 ORDER BY created_at DESC, adapter_id
