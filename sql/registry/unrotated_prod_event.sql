-- The event that made the current prod prod, when no rotation call confirmed it (no row
-- otherwise): promote of the current prod retries the endpoint rotation for it.
SELECT e.event_id
  FROM pria.registry_event e
  JOIN pria.model_registry r ON r.adapter_id = e.adapter_id AND r.status = 'prod'
 WHERE e.action IN ('promote', 'rollback')
   AND NOT EXISTS (
       SELECT 1 FROM pria.registry_event x
        WHERE x.action = 'rotation' AND (x.detail ->> 'ok')::boolean
          AND (x.detail ->> 'for_event')::bigint = e.event_id)
 ORDER BY e.event_id DESC
 LIMIT 1
