-- How many former prods are due for archiving (superseded longer ago than %(older_than)s);
-- the same condition pria.archive_superseded applies.
SELECT count(*)
  FROM pria.model_registry
 WHERE status = 'candidate'
   AND superseded_at < now() - %(older_than)s::interval;
