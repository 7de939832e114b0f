-- Training spend per night, from the runs recorded in model_registry: train writes the run's
-- cost_usd and gpu_hours into metrics_json. A night is the dataset date it trained on.
SELECT dataset_date,
       count(*) AS runs,
       coalesce(sum((metrics_json ->> 'cost_usd')::float8), 0) AS cost_usd,
       coalesce(sum((metrics_json ->> 'gpu_hours')::float8), 0) AS gpu_hours,
       string_agg(DISTINCT coalesce(metrics_json ->> 'gpu_type', metrics_json ->> 'device'), ', ')
           AS hardware
  FROM pria.model_registry
 GROUP BY dataset_date
 ORDER BY dataset_date;
