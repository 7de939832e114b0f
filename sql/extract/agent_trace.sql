-- agent_trace inside its retention window (90 days up to the extraction date, spec section 2).
-- The JSON travels as text: it is parsed, checked and stripped of identifiers in Python.
SELECT trace_id, expense_id, trace::text AS trace, created_at
FROM agent_trace
WHERE created_at >= %(agent_trace_cutoff)s
  AND created_at < %(until)s
