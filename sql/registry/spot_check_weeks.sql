-- Every spot-check week with recorded verdicts, newest first: how many samples were reviewed,
-- how many failed (wrong or unsafe), and who acknowledged the week (NULL: nobody yet).
SELECT v.iso_week,
       count(*) AS reviewed,
       count(*) FILTER (WHERE v.verdict IN ('wrong', 'unsafe')) AS failures,
       a.acknowledged_by,
       a.acknowledged_at
  FROM pria.spot_check_verdict AS v
  LEFT JOIN pria.spot_check_ack AS a ON a.iso_week = v.iso_week
 GROUP BY v.iso_week, a.acknowledged_by, a.acknowledged_at
 ORDER BY v.iso_week DESC
