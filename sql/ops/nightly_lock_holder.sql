-- Who holds the nightly lock of a date: the holding connection's application_name (set by
-- pria-ml to "pria-ml nightly <date> <host>:<pid>"), when it connected, and from where.
SELECT a.application_name,
       a.backend_start,
       coalesce(host(a.client_addr), 'local socket') AS client
  FROM pg_locks AS l
  JOIN pg_stat_activity AS a ON a.pid = l.pid
 WHERE l.locktype = 'advisory'
   AND l.granted
   AND l.classid = %(class)s
   AND l.objid = %(date)s
   AND l.objsubid = 2;
