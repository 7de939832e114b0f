-- The newest %(limit)s registry events with their adapter's dataset date, newest first.
-- Columns in the order of registry.Event.
SELECT event_id, occurred_at, action, adapter_id, dataset_date, from_status, to_status,
       previous_prod, forced, reason, actor, detail
  FROM pria.registry_history
 LIMIT %(limit)s
