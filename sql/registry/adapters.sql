-- Registry rows, newest first: one adapter (%(adapter_id)s), the prod one (%(prod_only)s), or
-- the newest %(limit)s. Columns in the order of registry.Adapter.
SELECT adapter_id, created_at, metrics_json, safety_flags, status, dataset_date, artifact_uri,
       artifact_sha256, base_model, promoted_at, superseded_at, archived_at, gate_passed,
       gate_reason, gate_decided_at, attempt
  FROM pria.model_registry
 WHERE (%(adapter_id)s::uuid IS NULL OR adapter_id = %(adapter_id)s::uuid)
   AND (NOT %(prod_only)s OR status = 'prod')
 ORDER BY created_at DESC, adapter_id
 LIMIT %(limit)s
