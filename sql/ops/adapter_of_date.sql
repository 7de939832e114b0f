-- The adapter trained on a dataset date (train registers at most one per date: its artifact
-- key is adapters/<date>.safetensors).
SELECT adapter_id
  FROM pria.model_registry
 WHERE dataset_date = %(date)s
 ORDER BY created_at DESC
 LIMIT 1;
