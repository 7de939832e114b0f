-- Production override rate per ISO week (spec section 1): the share of the agent's actions in
-- workflow_event that a human overrode. Weeks start on Monday, in UTC.
SELECT date_trunc('week', created_at AT TIME ZONE 'UTC')::date AS week_start,
       count(*) AS events,
       count(*) FILTER (WHERE override_flag) AS overrides
  FROM workflow_event
 WHERE created_at >= %(since)s
   AND override_flag IS NOT NULL
 GROUP BY 1
 ORDER BY 1;
