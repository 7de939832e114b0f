-- Retention enforced on stored files (spec section 2): `pria-ml retention` (and the nightly's
-- retention stage) deletes dataset, evaluation and spot-check files, and adapters that were
-- never prod, once the data they hold is past the strictest window of its sources. Every
-- deletion is recorded here before the file is removed, in its own transaction, so no file
-- disappears without a row saying what it was, why, and who removed it; a deletion that failed
-- after its row was written is found again by the next run and recorded again (attempts).

CREATE TABLE pria.retention_deletion (
    deletion_id  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uri          text        NOT NULL UNIQUE CHECK (uri <> ''),
    data_date    date        NOT NULL,
    sources      text[]      NOT NULL,
    window_days  integer     NOT NULL CHECK (window_days > 0),
    reason       text        NOT NULL,
    actor        text        NOT NULL,
    attempts     integer     NOT NULL DEFAULT 1,
    request_id   uuid        DEFAULT nullif(current_setting('pria.request_id', true), '')::uuid,
    deleted_at   timestamptz NOT NULL
);

COMMENT ON TABLE pria.retention_deletion IS
    'Files removed by retention: what, the data date and sources it held, the window, who, when.';

CREATE FUNCTION pria.record_retention_deletion(
    p_uri text,
    p_data_date date,
    p_sources text[],
    p_window_days integer,
    p_reason text,
    p_actor text,
    p_at timestamptz DEFAULT NULL
) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO pria.retention_deletion AS d (uri, data_date, sources, window_days, reason, actor,
                                              deleted_at)
    VALUES (p_uri, p_data_date, p_sources, p_window_days, p_reason, p_actor,
            coalesce(p_at, now()))
    ON CONFLICT (uri) DO UPDATE
       SET attempts = d.attempts + 1, deleted_at = excluded.deleted_at, actor = excluded.actor;
$$;
