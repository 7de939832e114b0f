-- What the endpoint rotation hook is told about prod change %(event_id)s.
SELECT e.event_id, e.action, e.adapter_id, e.previous_prod, r.dataset_date, r.artifact_uri,
       r.artifact_sha256, r.base_model
  FROM pria.registry_event e
  JOIN pria.model_registry r USING (adapter_id)
 WHERE e.event_id = %(event_id)s
