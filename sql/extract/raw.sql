-- One row per workflow_event in its window, with its trace and expense when those are still
-- inside their own (shorter) windows. The names in braces below stand for the per-source
-- queries in this directory (extract.py substitutes them); the order makes output deterministic.
WITH workflow_event_window AS ({workflow_event}),
     agent_trace_window AS ({agent_trace}),
     expense_window AS ({expense})
SELECT e.event_id::text                AS event_id,
       e.trace_id::text                AS trace_id,
       e.event_type,
       e.override_flag,
       e.corrected_output,
       e.created_at,
       e.action_index,
       t.trace_id IS NOT NULL          AS trace_found,
       t.trace,
       t.expense_id IS NOT NULL        AS has_expense,
       x.expense_id IS NOT NULL        AS expense_found,
       x.description,
       x.merchant,
       x.notes,
       x.category_id
FROM workflow_event_window AS e
LEFT JOIN agent_trace_window AS t ON t.trace_id = e.trace_id
LEFT JOIN expense_window AS x ON x.expense_id = t.expense_id
ORDER BY e.created_at, e.event_id
