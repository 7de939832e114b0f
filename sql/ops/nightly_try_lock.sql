-- The nightly lock of one dataset date: a session-level advisory lock on the registry database,
-- held by the connection of the running `pria-ml nightly` and released by the server when that
-- connection ends (normal exit, crash or SIGKILL alike). %(class)s is the lock namespace,
-- %(date)s the date's ordinal.
SELECT pg_try_advisory_lock(%(class)s, %(date)s);
