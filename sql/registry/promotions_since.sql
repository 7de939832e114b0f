-- Adapters promoted to prod since a time, with when, and the metrics the gate recorded.
SELECT e.occurred_at, e.adapter_id, e.forced, r.metrics_json
  FROM pria.registry_event AS e
  JOIN pria.model_registry AS r USING (adapter_id)
 WHERE e.action = 'promote'
   AND e.occurred_at >= %(since)s
 ORDER BY e.occurred_at;
