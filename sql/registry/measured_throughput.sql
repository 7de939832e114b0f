-- Training throughput measured by the newest run on a GPU type (tokens processed per second
-- per GPU), from the metrics_json that `pria-ml train` records. No row: no run measured yet.
SELECT (metrics_json -> 'throughput' ->> 'tokens_per_second_per_gpu')::double precision,
       adapter_id,
       dataset_date
FROM pria.model_registry
WHERE metrics_json -> 'throughput' ->> 'gpu_type' = %(gpu_type)s
  AND (metrics_json -> 'throughput' ->> 'tokens_per_second_per_gpu')::double precision > 0
ORDER BY created_at DESC
LIMIT 1;
