-- A date can be trained again (`pria-ml train --date D --retrain`, or a night whose features
-- were rebuilt): each training of a date is an attempt, numbered 1, 2, ... per dataset date.
-- Every attempt is its own immutable, registered adapter under its own key (attempt 1:
-- adapters/D.safetensors, attempt n: adapters/D.an.safetensors); none replaces another.
-- "The adapter of date D" that train, eval, gate and the nightly work on is the newest attempt,
-- read by attempt number, not by created_at (a simulated night may stamp two attempts alike).
--
-- 1. model_registry.attempt: backfilled in creation order per date, then NOT NULL, at least 1,
--    unique per date, and part of an adapter's immutable identity.
-- 2. pria.register_candidate(..., p_attempt): the attempt the artifact was written as; NULL
--    takes the next free number of the date. An attempt number already held by another
--    artifact is refused (PR003), so two retrains racing cannot both become attempt n.

ALTER TABLE pria.model_registry ADD COLUMN attempt integer;

SELECT set_config('pria.registry_fn', 'migration 0012', true);
UPDATE pria.model_registry AS r
   SET attempt = numbered.n
  FROM (SELECT adapter_id,
               row_number() OVER (PARTITION BY dataset_date ORDER BY created_at, adapter_id) AS n
          FROM pria.model_registry) AS numbered
 WHERE r.adapter_id = numbered.adapter_id;
SELECT set_config('pria.registry_fn', '', true);

ALTER TABLE pria.model_registry
    ALTER COLUMN attempt SET NOT NULL,
    ALTER COLUMN attempt SET DEFAULT 1,
    ADD CONSTRAINT model_registry_attempt_positive CHECK (attempt >= 1);
CREATE UNIQUE INDEX model_registry_date_attempt ON pria.model_registry (dataset_date, attempt DESC);

COMMENT ON COLUMN pria.model_registry.attempt IS
    'Which training of its dataset date this adapter is (1, 2, ...); the newest is the date''s.';

CREATE OR REPLACE FUNCTION pria.guard_registry_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'model_registry rows are never deleted (adapter %)', OLD.adapter_id
            USING ERRCODE = 'PR011', HINT = 'archive it with pria-ml archive';
    END IF;
    IF coalesce(current_setting('pria.registry_fn', true), '') = '' THEN
        RAISE EXCEPTION 'model_registry changes only through the pria registry functions '
                        '(direct UPDATE of adapter % refused)', OLD.adapter_id
            USING ERRCODE = 'PR011', HINT = 'use pria-ml promote / rollback / archive';
    END IF;
    IF (NEW.adapter_id, NEW.created_at, NEW.dataset_date, NEW.artifact_uri,
        NEW.artifact_sha256, NEW.base_model, NEW.attempt)
       IS DISTINCT FROM
       (OLD.adapter_id, OLD.created_at, OLD.dataset_date, OLD.artifact_uri,
        OLD.artifact_sha256, OLD.base_model, OLD.attempt) THEN
        RAISE EXCEPTION 'the identity of adapter % (id, date, attempt, artifact, base model) is '
                        'immutable', OLD.adapter_id
            USING ERRCODE = 'PR011', HINT = 'register a new candidate instead';
    END IF;
    RETURN NEW;
END
$$;

-- p_attempt comes after p_at so that every existing caller (positional, seven arguments) keeps
-- its meaning: attempt NULL, the next free one.
DROP FUNCTION pria.register_candidate(date, text, text, text, jsonb, text, timestamptz);
CREATE FUNCTION pria.register_candidate(
    p_dataset_date date,
    p_artifact_uri text,
    p_artifact_sha256 text,
    p_base_model text,
    p_metrics jsonb,
    p_actor text,
    p_at timestamptz DEFAULT NULL,
    p_attempt integer DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id       uuid;
    v_existing pria.model_registry;
    v_attempt  integer := p_attempt;
BEGIN
    IF p_metrics IS NULL OR jsonb_typeof(p_metrics) <> 'object' THEN
        RAISE EXCEPTION 'metrics for % must be a JSON object, got %', p_artifact_uri,
            coalesce(jsonb_typeof(p_metrics), 'NULL')
            USING ERRCODE = 'PR001';
    END IF;
    IF p_artifact_sha256 IS NULL OR p_artifact_sha256 !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'artifact_sha256 % of % is not a lowercase hex sha256', p_artifact_sha256,
            p_artifact_uri
            USING ERRCODE = 'PR001';
    END IF;
    IF p_attempt IS NOT NULL AND p_attempt < 1 THEN
        RAISE EXCEPTION 'attempt % of % must be 1 or more', p_attempt, p_artifact_uri
            USING ERRCODE = 'PR001';
    END IF;

    -- One registration per date at a time, so "the next free attempt" is well defined
    -- and the same artifact registered twice at once is one row.
    PERFORM pg_advisory_xact_lock(hashtext('pria.register_candidate'),
                                  p_dataset_date - DATE '2000-01-01');
    SELECT * INTO v_existing FROM pria.model_registry WHERE artifact_uri = p_artifact_uri;
    IF FOUND THEN
        IF (v_existing.artifact_sha256, v_existing.dataset_date, v_existing.base_model,
            v_existing.attempt)
           IS DISTINCT FROM
           (p_artifact_sha256, p_dataset_date, p_base_model,
            coalesce(p_attempt, v_existing.attempt)) THEN
            RAISE EXCEPTION 'artifact % is already registered as adapter % (attempt %) with '
                            'sha256 %, dataset date %, base model %; artifacts are immutable',
                p_artifact_uri, v_existing.adapter_id, v_existing.attempt,
                v_existing.artifact_sha256, v_existing.dataset_date, v_existing.base_model
                USING ERRCODE = 'PR003',
                      HINT = 'write the new adapter under a new URI (a new attempt)';
        END IF;
        RETURN v_existing.adapter_id;
    END IF;

    IF v_attempt IS NULL THEN
        SELECT coalesce(max(attempt), 0) + 1 INTO v_attempt
          FROM pria.model_registry WHERE dataset_date = p_dataset_date;
    ELSE
        SELECT * INTO v_existing FROM pria.model_registry
         WHERE dataset_date = p_dataset_date AND attempt = v_attempt;
        IF FOUND THEN
            RAISE EXCEPTION 'attempt % of % is already registered as adapter % (%); attempts '
                            'are immutable', v_attempt, p_dataset_date, v_existing.adapter_id,
                v_existing.artifact_uri
                USING ERRCODE = 'PR003',
                      HINT = 'run pria-ml train --date ... --retrain again: it takes the next '
                             'attempt';
        END IF;
    END IF;

    INSERT INTO pria.model_registry (dataset_date, artifact_uri, artifact_sha256, base_model,
                                     metrics_json, safety_flags, created_at, attempt)
    VALUES (p_dataset_date, p_artifact_uri, p_artifact_sha256, p_base_model, p_metrics,
            (p_metrics ->> 'safety_flags')::integer, coalesce(p_at, now()), v_attempt)
    RETURNING adapter_id INTO v_id;

    INSERT INTO pria.registry_event (action, adapter_id, to_status, actor, detail, occurred_at)
    VALUES ('register', v_id, 'candidate', p_actor,
            jsonb_build_object('artifact_uri', p_artifact_uri,
                               'artifact_sha256', p_artifact_sha256,
                               'dataset_date', p_dataset_date,
                               'base_model', p_base_model,
                               'attempt', v_attempt),
            coalesce(p_at, clock_timestamp()));
    RETURN v_id;
END
$$;
