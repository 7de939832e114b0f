-- Model registry (spec section 7, docs/registry.md).
--
-- model_registry holds one row per trained adapter; registry_event is the append-only trail every
-- change writes to, and the source of rollback targets and history. The database itself keeps
-- the invariants: at most one prod row (partial unique index), rows change only through the
-- pria.* registry functions (trigger), events are never updated or deleted (trigger).
--
-- Errors raised for the operator use SQLSTATE class 'PR' so the Python side can tell a refused
-- request (RegistryError) from a bug; the message names the input and the fix.

CREATE TABLE pria.model_registry (
    adapter_id      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    metrics_json    jsonb       NOT NULL DEFAULT '{}'::jsonb
                                CHECK (jsonb_typeof(metrics_json) = 'object'),
    safety_flags    integer     CHECK (safety_flags >= 0),
    status          text        NOT NULL DEFAULT 'candidate'
                                CHECK (status IN ('candidate', 'prod', 'archived')),
    dataset_date    date        NOT NULL,
    artifact_uri    text        NOT NULL UNIQUE CHECK (artifact_uri <> ''),
    artifact_sha256 text        NOT NULL CHECK (artifact_sha256 ~ '^[0-9a-f]{64}$'),
    base_model      text        NOT NULL CHECK (base_model <> ''),
    promoted_at     timestamptz,
    superseded_at   timestamptz,
    archived_at     timestamptz,
    gate_passed     boolean,
    gate_reason     text,
    gate_decided_at timestamptz,
    CHECK (status <> 'prod' OR promoted_at IS NOT NULL),
    CHECK (status <> 'archived' OR archived_at IS NOT NULL),
    CHECK ((gate_passed IS NULL) = (gate_decided_at IS NULL))
);

COMMENT ON TABLE pria.model_registry IS
    'One row per trained LoRA adapter. status changes only through pria.promote / pria.rollback '
    '/ pria.archive_superseded; a superseded prod returns to candidate with superseded_at set.';
COMMENT ON COLUMN pria.model_registry.created_at IS 'Training completion time (registration).';
COMMENT ON COLUMN pria.model_registry.metrics_json IS 'Accuracy, reward, latency, cost, gate inputs.';
COMMENT ON COLUMN pria.model_registry.safety_flags IS 'Offending samples; NULL until evaluated.';
COMMENT ON COLUMN pria.model_registry.gate_passed IS
    'Promotion gate decision written by evaluation; NULL = not gated yet (promote refuses it).';

-- The invariant the whole design rests on: two prod rows can never exist.
CREATE UNIQUE INDEX model_registry_one_prod ON pria.model_registry ((true))
    WHERE status = 'prod';
CREATE INDEX model_registry_dataset_date ON pria.model_registry (dataset_date, created_at DESC);

CREATE TABLE pria.registry_event (
    event_id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    action          text        NOT NULL
                                CHECK (action IN ('register', 'gate', 'promote', 'rollback',
                                                  'archive', 'rotation')),
    adapter_id      uuid        NOT NULL REFERENCES pria.model_registry (adapter_id),
    from_status     text,
    to_status       text,
    -- promote / rollback: the prod this event replaced (NULL for the first promotion).
    previous_prod   uuid        REFERENCES pria.model_registry (adapter_id),
    forced          boolean     NOT NULL DEFAULT false,
    reason          text,
    actor           text        NOT NULL,
    detail          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CHECK (NOT forced OR coalesce(btrim(reason), '') <> '')
);

COMMENT ON TABLE pria.registry_event IS
    'Append-only trail of model_registry changes; history, rollback targets and replay read it.';
CREATE INDEX registry_event_adapter ON pria.registry_event (adapter_id, event_id);

CREATE FUNCTION pria.refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pria.registry_event is append-only: % refused', TG_OP
        USING ERRCODE = 'PR010',
              HINT = 'record a new event instead of changing or removing an old one';
END
$$;

CREATE TRIGGER registry_event_append_only
    BEFORE UPDATE OR DELETE ON pria.registry_event
    FOR EACH ROW EXECUTE FUNCTION pria.refuse_event_change();
CREATE TRIGGER registry_event_no_truncate
    BEFORE TRUNCATE ON pria.registry_event
    FOR EACH STATEMENT EXECUTE FUNCTION pria.refuse_event_change();

-- Rows change only inside the registry functions, which set pria.registry_fn for their own
-- transaction; identity columns never change at all.
CREATE FUNCTION pria.guard_registry_change() RETURNS trigger
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
        NEW.artifact_sha256, NEW.base_model)
       IS DISTINCT FROM
       (OLD.adapter_id, OLD.created_at, OLD.dataset_date, OLD.artifact_uri,
        OLD.artifact_sha256, OLD.base_model) THEN
        RAISE EXCEPTION 'the identity of adapter % (id, date, artifact, base model) is immutable',
            OLD.adapter_id
            USING ERRCODE = 'PR011', HINT = 'register a new candidate instead';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER model_registry_guard
    BEFORE UPDATE OR DELETE ON pria.model_registry
    FOR EACH ROW EXECUTE FUNCTION pria.guard_registry_change();

-- Register a trained adapter as a candidate. Registering the same artifact again (a resumed
-- nightly run) returns the existing row; the same URI with a different checksum is refused,
-- because artifacts are immutable.
CREATE FUNCTION pria.register_candidate(
    p_dataset_date date,
    p_artifact_uri text,
    p_artifact_sha256 text,
    p_base_model text,
    p_metrics jsonb,
    p_actor text
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id       uuid;
    v_existing pria.model_registry;
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

    INSERT INTO pria.model_registry (dataset_date, artifact_uri, artifact_sha256, base_model,
                                     metrics_json, safety_flags)
    VALUES (p_dataset_date, p_artifact_uri, p_artifact_sha256, p_base_model, p_metrics,
            (p_metrics ->> 'safety_flags')::integer)
    ON CONFLICT (artifact_uri) DO NOTHING
    RETURNING adapter_id INTO v_id;

    IF v_id IS NULL THEN
        SELECT * INTO v_existing FROM pria.model_registry WHERE artifact_uri = p_artifact_uri;
        IF (v_existing.artifact_sha256, v_existing.dataset_date, v_existing.base_model)
           IS DISTINCT FROM (p_artifact_sha256, p_dataset_date, p_base_model) THEN
            RAISE EXCEPTION 'artifact % is already registered as adapter % with sha256 %, '
                            'dataset date %, base model %; artifacts are immutable',
                p_artifact_uri, v_existing.adapter_id, v_existing.artifact_sha256,
                v_existing.dataset_date, v_existing.base_model
                USING ERRCODE = 'PR003',
                      HINT = 'write the new adapter under a new URI';
        END IF;
        RETURN v_existing.adapter_id;
    END IF;

    INSERT INTO pria.registry_event (action, adapter_id, to_status, actor, detail)
    VALUES ('register', v_id, 'candidate', p_actor,
            jsonb_build_object('artifact_uri', p_artifact_uri,
                               'artifact_sha256', p_artifact_sha256,
                               'dataset_date', p_dataset_date,
                               'base_model', p_base_model));
    RETURN v_id;
END
$$;

-- Record the promotion gate's decision for a candidate (written by evaluation): metrics are
-- merged into metrics_json (top-level keys replaced), safety_flags taken from them when present.
CREATE FUNCTION pria.record_gate_decision(
    p_adapter_id uuid,
    p_passed boolean,
    p_reason text,
    p_metrics jsonb,
    p_actor text
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_row pria.model_registry;
BEGIN
    IF p_passed IS NULL OR coalesce(btrim(p_reason), '') = '' THEN
        RAISE EXCEPTION 'a gate decision for adapter % needs passed true/false and a reason',
            p_adapter_id
            USING ERRCODE = 'PR001';
    END IF;
    IF p_metrics IS NULL OR jsonb_typeof(p_metrics) <> 'object' THEN
        RAISE EXCEPTION 'gate metrics for adapter % must be a JSON object', p_adapter_id
            USING ERRCODE = 'PR001';
    END IF;
    SELECT * INTO v_row FROM pria.model_registry WHERE adapter_id = p_adapter_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no adapter % in model_registry', p_adapter_id
            USING ERRCODE = 'PR002', HINT = 'pria-ml history lists the registered adapters';
    END IF;
    IF v_row.status <> 'candidate' THEN
        RAISE EXCEPTION 'adapter % is %, not a candidate; only candidates get gate decisions',
            p_adapter_id, v_row.status
            USING ERRCODE = 'PR004';
    END IF;

    PERFORM set_config('pria.registry_fn', 'record_gate_decision', true);
    UPDATE pria.model_registry
       SET metrics_json    = metrics_json || p_metrics,
           safety_flags    = coalesce((p_metrics ->> 'safety_flags')::integer, safety_flags),
           gate_passed     = p_passed,
           gate_reason     = p_reason,
           gate_decided_at = now()
     WHERE adapter_id = p_adapter_id;
    PERFORM set_config('pria.registry_fn', '', true);

    INSERT INTO pria.registry_event (action, adapter_id, from_status, to_status, reason, actor,
                                     detail)
    VALUES ('gate', p_adapter_id, 'candidate', 'candidate', p_reason, p_actor,
            jsonb_build_object('passed', p_passed, 'metrics', p_metrics));
END
$$;
