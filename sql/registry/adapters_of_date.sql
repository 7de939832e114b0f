-- The attempts trained on one dataset date, newest attempt first (index model_registry_date_attempt;
-- attempt, not created_at: a simulated night may stamp two attempts alike).
-- Columns in the order of registry.Adapter.
SELECT adapter_id, created_at, metrics_json, safety_flags, status, dataset_date, artifact_uri,
       artifact_sha256, base_model, promoted_at, superseded_at, archived_at, gate_passed,
       gate_reason, gate_decided_at, attempt
  FROM pria.model_registry
 WHERE dataset_date = %(date)s
 ORDER BY attempt DESC
