-- The production override rate per UTC day: the spec's headline metric, read where production
-- records it. One row per day with categorisation events, from %(since)s or, when that is
-- NULL, from %(days)s days before the newest event; `pria-ml report` sums days into weeks.
WITH events AS (
    SELECT created_at, override_flag
    FROM workflow_event
    WHERE event_type = %(event_type)s
      AND override_flag IS NOT NULL
)
SELECT (created_at AT TIME ZONE 'UTC')::date        AS day,
       count(*)                                     AS events,
       count(*) FILTER (WHERE override_flag)        AS overrides
FROM events
WHERE created_at >= coalesce(
        %(since)s::date::timestamptz,
        (SELECT max(created_at) FROM events) - make_interval(days => %(days)s))
GROUP BY 1
ORDER BY 1
