-- The conversations PRIA's agent held while each prod adapter served, sampled for the weekly
-- spot-check (spec section 6.4), from the source's agent_trace and workflow_event.
-- %(adapters)s / %(since)s / %(until)s are the prod intervals of the week, read from the
-- registry: a conversation belongs to the adapter that was prod at its first agent action in
-- the week (workflow_event.created_at). The sample is the first %(size)s by a hash of the week
-- and the trace id, so the same week always gives the same conversations. workspace_id is
-- never selected.
WITH served (adapter_id, since, until) AS (
    SELECT * FROM unnest(%(adapters)s::uuid[], %(since)s::timestamptz[],
                         %(until)s::timestamptz[])
),
actions AS (
    SELECT trace_id,
           min(created_at) AS first_action,
           count(*) AS actions,
           count(*) FILTER (WHERE override_flag) AS overridden,
           array_agg(corrected_output ORDER BY created_at, event_id)
               FILTER (WHERE override_flag AND corrected_output IS NOT NULL) AS corrections
      FROM workflow_event
     WHERE created_at >= %(week_start)s AND created_at < %(week_end)s
       AND trace_id IS NOT NULL
     GROUP BY trace_id
)
SELECT a.trace_id::text AS trace_id,
       s.adapter_id,
       a.first_action,
       a.actions,
       a.overridden,
       coalesce(a.corrections, '{}') AS corrections,
       t.trace::text AS trace
  FROM actions AS a
  JOIN served AS s ON a.first_action >= s.since AND a.first_action < s.until
  JOIN agent_trace AS t ON t.trace_id = a.trace_id
 WHERE t.trace IS NOT NULL
 ORDER BY md5(%(week)s || a.trace_id::text)
 LIMIT %(size)s
