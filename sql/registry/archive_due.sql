-- How many former prods are due for archiving at %(now)s (superseded longer before it than
-- %(older_than)s); the same condition pria.archive_superseded applies.
SELECT count(*)
  FROM pria.model_registry
 WHERE status = 'candidate'
   AND superseded_at < %(now)s::timestamptz - %(older_than)s::interval;
