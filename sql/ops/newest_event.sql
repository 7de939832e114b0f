-- The day of the newest reviewed agent action in workflow_event, in UTC: the source's own
-- time, which a simulated deployment (the demo) sets, so its objectives read its own weeks.
SELECT max(created_at AT TIME ZONE 'UTC')::date AS newest
  FROM workflow_event
 WHERE override_flag IS NOT NULL;
