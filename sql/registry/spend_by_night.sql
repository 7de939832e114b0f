-- Training spend per night. A night is the dataset date it trained on. Where GPU machines
-- recorded their runs (pria.gpu_machine_run, boot to exit), they are the cost; a night without
-- one (trained on a laptop, the demo) falls back to the trainer's own cost_usd / gpu_hours in
-- metrics_json. Columns in the order of registry.NightSpend.
WITH machines AS (
    SELECT dataset_date,
           count(*) AS runs,
           sum(usd)::float8 AS cost_usd,
           sum(extract(epoch FROM exited_at - booted_at) / 3600 * gpus)::float8 AS gpu_hours,
           string_agg(DISTINCT gpu_type, ', ') AS hardware
      FROM pria.gpu_machine_run
     GROUP BY dataset_date
), trainers AS (
    SELECT dataset_date,
           count(*) AS runs,
           coalesce(sum((metrics_json ->> 'cost_usd')::float8), 0) AS cost_usd,
           coalesce(sum((metrics_json ->> 'gpu_hours')::float8), 0) AS gpu_hours,
           string_agg(DISTINCT coalesce(metrics_json ->> 'gpu_type', metrics_json ->> 'device'),
                      ', ') AS hardware
      FROM pria.model_registry
     GROUP BY dataset_date
)
SELECT coalesce(m.dataset_date, t.dataset_date),
       coalesce(m.runs, t.runs),
       coalesce(m.cost_usd, t.cost_usd),
       coalesce(m.gpu_hours, t.gpu_hours),
       coalesce(m.hardware, t.hardware),
       CASE WHEN m.dataset_date IS NOT NULL THEN 'machine boot to exit'
            ELSE 'trainer wall time' END
  FROM machines m
  FULL JOIN trainers t USING (dataset_date)
 ORDER BY 1;
