-- The newest %(limit)s files retention deleted, newest first.
SELECT uri, data_date, sources, window_days, reason, actor, attempts, deleted_at
  FROM pria.retention_deletion
 ORDER BY deleted_at DESC, deletion_id DESC
 LIMIT %(limit)s
