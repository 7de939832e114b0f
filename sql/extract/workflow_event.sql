-- workflow_event inside its retention window (365 days up to the extraction date, spec section 2).
-- workspace_id is not selected: it never leaves the database.
SELECT event_id, trace_id, event_type, override_flag, corrected_output, created_at
FROM workflow_event
WHERE created_at >= %(workflow_event_cutoff)s
  AND created_at < %(until)s
