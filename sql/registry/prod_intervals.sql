-- Which adapter was prod when, during [%(since)s, %(until)s): every prod change (a promote or
-- rollback event, in commit order) makes its adapter prod until the next one. Clipped to the
-- window; the spot-check attributes each live conversation to the interval it fell in.
WITH changes AS (
    SELECT adapter_id, occurred_at AS since,
           lead(occurred_at) OVER (ORDER BY event_id) AS until
      FROM pria.registry_event
     WHERE action IN ('promote', 'rollback')
)
SELECT adapter_id,
       greatest(since, %(since)s::timestamptz) AS since,
       least(coalesce(until, 'infinity'), %(until)s::timestamptz) AS until
  FROM changes
 WHERE since < %(until)s::timestamptz
   AND coalesce(until, 'infinity') > %(since)s::timestamptz
   AND coalesce(until, 'infinity') > since
 ORDER BY since
