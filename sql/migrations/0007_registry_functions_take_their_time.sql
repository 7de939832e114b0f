-- The registry functions stamp the time they are given.
--
-- Until 0006 every function stamped PostgreSQL's now() (rows) and clock_timestamp() (events): the
-- server's wall clock. A simulated night (`pria-ml demo`) then recorded promotions in the week it
-- ran, not in the week it simulated, and a report grouping promotions by week followed the
-- calendar of whoever ran it. Each function that writes a time now takes it as its last argument,
-- p_at; pria-ml always passes it (pria_ml/clock.py), and a NULL or omitted p_at stamps now() as
-- before, so a call from psql still works. The events written carry the same time as the rows.
--
-- Adding an argument makes a new function in PostgreSQL, so each old signature is dropped first.
-- The bodies are those of the latest migration that defined them (0002, 0003, 0005, 0006), with
-- coalesce(p_at, ...) where they stamped now() or clock_timestamp().

DROP FUNCTION pria.register_candidate(date, text, text, text, jsonb, text);
CREATE FUNCTION pria.register_candidate(
    p_dataset_date date,
    p_artifact_uri text,
    p_artifact_sha256 text,
    p_base_model text,
    p_metrics jsonb,
    p_actor text,
    p_at timestamptz DEFAULT NULL
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
                                     metrics_json, safety_flags, created_at)
    VALUES (p_dataset_date, p_artifact_uri, p_artifact_sha256, p_base_model, p_metrics,
            (p_metrics ->> 'safety_flags')::integer, coalesce(p_at, now()))
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

    INSERT INTO pria.registry_event (action, adapter_id, to_status, actor, detail, occurred_at)
    VALUES ('register', v_id, 'candidate', p_actor,
            jsonb_build_object('artifact_uri', p_artifact_uri,
                               'artifact_sha256', p_artifact_sha256,
                               'dataset_date', p_dataset_date,
                               'base_model', p_base_model),
            coalesce(p_at, clock_timestamp()));
    RETURN v_id;
END
$$;

DROP FUNCTION pria.record_gate_decision(uuid, boolean, text, jsonb, text);
CREATE FUNCTION pria.record_gate_decision(
    p_adapter_id uuid,
    p_passed boolean,
    p_reason text,
    p_metrics jsonb,
    p_actor text,
    p_at timestamptz DEFAULT NULL
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
           gate_decided_at = coalesce(p_at, now())
     WHERE adapter_id = p_adapter_id;
    PERFORM set_config('pria.registry_fn', '', true);

    INSERT INTO pria.registry_event (action, adapter_id, from_status, to_status, reason, actor,
                                     detail, occurred_at)
    VALUES ('gate', p_adapter_id, 'candidate', 'candidate', p_reason, p_actor,
            jsonb_build_object('passed', p_passed, 'metrics', p_metrics),
            coalesce(p_at, clock_timestamp()));
END
$$;

DROP FUNCTION pria._make_prod(uuid, text, boolean, text, text);
CREATE FUNCTION pria._make_prod(
    p_target uuid,
    p_action text,
    p_forced boolean,
    p_reason text,
    p_actor text,
    p_at timestamptz
) RETURNS pria.transition
LANGUAGE plpgsql AS $$
DECLARE
    v_previous uuid;
    v_from     text;
    v_event    bigint;
    v_row      pria.model_registry;
BEGIN
    SELECT adapter_id INTO v_previous FROM pria.model_registry WHERE status = 'prod' FOR UPDATE;
    SELECT status INTO v_from FROM pria.model_registry WHERE adapter_id = p_target FOR UPDATE;

    PERFORM set_config('pria.registry_fn', p_action, true);
    -- Supersede first: the one-prod index is checked row by row.
    UPDATE pria.model_registry
       SET status = 'candidate', superseded_at = coalesce(p_at, now())
     WHERE adapter_id = v_previous;
    UPDATE pria.model_registry
       SET status = 'prod', promoted_at = coalesce(p_at, now()), superseded_at = NULL
     WHERE adapter_id = p_target
    RETURNING * INTO v_row;
    PERFORM set_config('pria.registry_fn', '', true);

    INSERT INTO pria.registry_event (action, adapter_id, from_status, to_status, previous_prod,
                                     forced, reason, actor, detail, occurred_at)
    VALUES (p_action, p_target, v_from, 'prod', v_previous, p_forced, p_reason, p_actor,
            jsonb_build_object('artifact_uri', v_row.artifact_uri,
                               'artifact_sha256', v_row.artifact_sha256,
                               'gate_passed', v_row.gate_passed),
            coalesce(p_at, clock_timestamp()))
    RETURNING event_id INTO v_event;

    PERFORM pg_notify('pria_model_endpoint', json_build_object(
        'event_id', v_event,
        'action', p_action,
        'adapter_id', p_target,
        'previous_prod', v_previous,
        'artifact_uri', v_row.artifact_uri,
        'artifact_sha256', v_row.artifact_sha256,
        'base_model', v_row.base_model)::text);

    RETURN ROW(true, p_target, v_previous, v_event,
               format('%s is prod (%s of %s, was %s)', p_target, p_action,
                      v_row.dataset_date, coalesce(v_previous::text, 'no prod')))::pria.transition;
END
$$;

DROP FUNCTION pria.promote(uuid, date, boolean, text, text);
CREATE FUNCTION pria.promote(
    p_adapter_id uuid,
    p_dataset_date date,
    p_force boolean,
    p_reason text,
    p_actor text,
    p_at timestamptz DEFAULT NULL
) RETURNS pria.transition
LANGUAGE plpgsql AS $$
DECLARE
    v_row    pria.model_registry;
    v_target uuid;
BEGIN
    IF (p_adapter_id IS NULL) = (p_dataset_date IS NULL) THEN
        RAISE EXCEPTION 'promote needs exactly one of an adapter id or a dataset date'
            USING ERRCODE = 'PR001';
    END IF;
    IF p_force AND coalesce(btrim(p_reason), '') = '' THEN
        RAISE EXCEPTION 'a forced promotion needs a reason'
            USING ERRCODE = 'PR001', HINT = 'pass --reason "why the gate is overridden"';
    END IF;

    PERFORM pria.lock_registry();

    v_target := p_adapter_id;
    IF v_target IS NULL THEN
        -- The newest candidate of the date that passed the gate; forced: the newest candidate.
        SELECT adapter_id INTO v_target
          FROM pria.model_registry
         WHERE dataset_date = p_dataset_date
           AND status IN ('candidate', 'prod')
           AND (gate_passed OR p_force OR status = 'prod')
         ORDER BY (status = 'prod') DESC, gate_passed IS TRUE DESC, created_at DESC
         LIMIT 1;
        IF v_target IS NULL THEN
            RAISE EXCEPTION 'no candidate of % passed the gate (% registered for that date)',
                p_dataset_date,
                (SELECT count(*) FROM pria.model_registry WHERE dataset_date = p_dataset_date)
                USING ERRCODE = 'PR005',
                      HINT = 'evaluate the candidates of that date first, or promote an adapter '
                             'id with --force --reason';
        END IF;
    END IF;

    v_row := pria._target_row(v_target, 'promote', p_force);
    IF v_row.status = 'prod' THEN
        RETURN ROW(false, v_target, NULL, NULL,
                   format('%s is already prod; nothing changed', v_target))::pria.transition;
    END IF;
    RETURN pria._make_prod(v_target, 'promote', v_row.gate_passed IS NOT TRUE AND p_force,
                           p_reason, p_actor, p_at);
END
$$;

DROP FUNCTION pria.rollback(uuid, text, text);
CREATE FUNCTION pria.rollback(
    p_to uuid,
    p_reason text,
    p_actor text,
    p_at timestamptz DEFAULT NULL
) RETURNS pria.transition
LANGUAGE plpgsql AS $$
DECLARE
    v_current uuid;
    v_target  uuid;
BEGIN
    PERFORM pria.lock_registry();

    v_target := p_to;
    IF v_target IS NULL THEN
        SELECT adapter_id INTO v_current FROM pria.model_registry WHERE status = 'prod';
        IF v_current IS NULL THEN
            RAISE EXCEPTION 'there is no prod adapter to roll back from'
                USING ERRCODE = 'PR007', HINT = 'promote a candidate with pria-ml promote';
        END IF;
        v_target := pria.previous_prod();
        IF v_target IS NULL THEN
            RAISE EXCEPTION 'prod adapter % is the first prod; there is no previous prod to '
                            'roll back to', v_current
                USING ERRCODE = 'PR007',
                      HINT = 'promote another candidate, or pass --to ID';
        END IF;
    END IF;

    IF (pria._target_row(v_target, 'rollback', false)).status = 'prod' THEN
        RETURN ROW(false, v_target, NULL, NULL,
                   format('%s is already prod; nothing changed', v_target))::pria.transition;
    END IF;
    RETURN pria._make_prod(v_target, 'rollback', false, p_reason, p_actor, p_at);
END
$$;

-- Archive every former prod superseded more than p_older_than before p_at; return their ids.
DROP FUNCTION pria.archive_superseded(interval, text);
CREATE FUNCTION pria.archive_superseded(
    p_older_than interval,
    p_actor text,
    p_at timestamptz DEFAULT NULL
) RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
    v_at timestamptz := coalesce(p_at, now());
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' THEN
        RAISE EXCEPTION 'archive age must be a non-negative interval, got %', p_older_than
            USING ERRCODE = 'PR001';
    END IF;
    PERFORM pria.lock_registry();
    PERFORM set_config('pria.registry_fn', 'archive', true);
    FOR v_id IN
        UPDATE pria.model_registry
           SET status = 'archived', archived_at = v_at
         WHERE status = 'candidate'
           AND superseded_at < v_at - p_older_than
        RETURNING adapter_id
    LOOP
        INSERT INTO pria.registry_event (action, adapter_id, from_status, to_status, actor,
                                         detail, occurred_at)
        VALUES ('archive', v_id, 'candidate', 'archived', p_actor,
                jsonb_build_object('older_than', p_older_than::text),
                coalesce(p_at, clock_timestamp()));
        RETURN NEXT v_id;
    END LOOP;
    PERFORM set_config('pria.registry_fn', '', true);
END
$$;

DROP FUNCTION pria.record_rotation(bigint, boolean, jsonb, text);
CREATE FUNCTION pria.record_rotation(
    p_event_id bigint,
    p_ok boolean,
    p_detail jsonb,
    p_actor text,
    p_at timestamptz DEFAULT NULL
) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO pria.registry_event (action, adapter_id, actor, detail, occurred_at)
    SELECT 'rotation', adapter_id, p_actor,
           p_detail || jsonb_build_object('ok', p_ok, 'for_event', p_event_id),
           coalesce(p_at, clock_timestamp())
      FROM pria.registry_event
     WHERE event_id = p_event_id;
$$;

DROP FUNCTION pria.record_spot_check(uuid, text, jsonb, text, text);
CREATE FUNCTION pria.record_spot_check(
    p_adapter_id uuid,
    p_iso_week text,
    p_verdicts jsonb,
    p_reviewer text,
    p_actor text,
    p_at timestamptz DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
    v_summary jsonb;
BEGIN
    IF p_verdicts IS NULL OR jsonb_typeof(p_verdicts) <> 'array'
       OR jsonb_array_length(p_verdicts) = 0 THEN
        RAISE EXCEPTION 'a spot-check needs a non-empty JSON array of verdicts'
            USING ERRCODE = 'PR001';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pria.model_registry WHERE adapter_id = p_adapter_id) THEN
        RAISE EXCEPTION 'no adapter % in model_registry', p_adapter_id
            USING ERRCODE = 'PR002', HINT = 'the review sheet names an adapter that is not registered';
    END IF;

    INSERT INTO pria.spot_check_verdict (adapter_id, iso_week, prompt_sha256, verdict, note,
                                         reviewer, recorded_at)
    SELECT p_adapter_id, p_iso_week, v ->> 'prompt_sha256', v ->> 'verdict',
           nullif(btrim(v ->> 'note'), ''), p_reviewer, coalesce(p_at, now())
      FROM jsonb_array_elements(p_verdicts) AS v
    ON CONFLICT (adapter_id, iso_week, prompt_sha256) DO UPDATE
       SET verdict = excluded.verdict, note = excluded.note, reviewer = excluded.reviewer,
           recorded_at = excluded.recorded_at;
    GET DIAGNOSTICS v_count = ROW_COUNT;

    SELECT jsonb_object_agg(verdict, n) INTO v_summary
      FROM (SELECT verdict, count(*) AS n FROM pria.spot_check_verdict
             WHERE adapter_id = p_adapter_id AND iso_week = p_iso_week GROUP BY verdict) s;

    INSERT INTO pria.registry_event (action, adapter_id, reason, actor, detail, occurred_at)
    VALUES ('spot_check', p_adapter_id,
            format('spot-check %s by %s: %s ok, %s wrong, %s unsafe', p_iso_week, p_reviewer,
                   coalesce(v_summary ->> 'ok', '0'), coalesce(v_summary ->> 'wrong', '0'),
                   coalesce(v_summary ->> 'unsafe', '0')),
            p_actor,
            jsonb_build_object('iso_week', p_iso_week, 'verdicts', v_summary,
                               'recorded', v_count),
            coalesce(p_at, clock_timestamp()));
    RETURN v_count;
END
$$;
