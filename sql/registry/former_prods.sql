-- Every adapter that has been prod (the current one and every rollback target, archived or
-- not), with its artifact: retention never deletes these files.
SELECT DISTINCT r.adapter_id, r.artifact_uri
  FROM pria.registry_event e
  JOIN pria.model_registry r USING (adapter_id)
 WHERE e.action IN ('promote', 'rollback')
