-- workflow_event inside its retention window (365 days up to the extraction date, spec section 2).
-- workspace_id is not selected: it never leaves the database. action_index numbers the events
-- of one trace in time order: event k is the agent's k-th action (assistant message) in it.
SELECT event_id, trace_id, event_type, override_flag, corrected_output, created_at,
       row_number() OVER (PARTITION BY trace_id ORDER BY created_at, event_id) AS action_index
FROM workflow_event
WHERE created_at >= %(workflow_event_cutoff)s
  AND created_at < %(until)s
