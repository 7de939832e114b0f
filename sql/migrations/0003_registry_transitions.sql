-- Changes of prod: promote, rollback, archive. Each is one function, run in one transaction.
--
-- Every function that can change prod first takes one transaction-level advisory lock, so those
-- changes are serialised: the event ids of prod changes are in commit order and replaying the
-- log reproduces the state (pria.registry_replay). Each change of prod sends a NOTIFY on channel
-- pria_model_endpoint (delivered at commit, never for a rolled-back change).

CREATE FUNCTION pria.lock_registry() RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtext('pria.model_registry'));
$$;

-- One result shape for every transition.
CREATE TYPE pria.transition AS (
    changed       boolean,
    adapter_id    uuid,
    previous_prod uuid,
    event_id      bigint,
    message       text
);

-- Make p_target prod in place of the current prod, record the event and notify. Callers hold the
-- registry lock and have validated p_target; p_action is 'promote' or 'rollback'.
CREATE FUNCTION pria._make_prod(
    p_target uuid,
    p_action text,
    p_forced boolean,
    p_reason text,
    p_actor text
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
       SET status = 'candidate', superseded_at = now()
     WHERE adapter_id = v_previous;
    UPDATE pria.model_registry
       SET status = 'prod', promoted_at = now(), superseded_at = NULL
     WHERE adapter_id = p_target
    RETURNING * INTO v_row;
    PERFORM set_config('pria.registry_fn', '', true);

    INSERT INTO pria.registry_event (action, adapter_id, from_status, to_status, previous_prod,
                                     forced, reason, actor, detail)
    VALUES (p_action, p_target, v_from, 'prod', v_previous, p_forced, p_reason, p_actor,
            jsonb_build_object('artifact_uri', v_row.artifact_uri,
                               'artifact_sha256', v_row.artifact_sha256,
                               'gate_passed', v_row.gate_passed))
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

-- Promote an adapter, given by id or as the gated candidate of a dataset date (exactly one of
-- the two). A candidate without a passing gate decision is refused unless p_force with a
-- reason, which the event records. Promoting the current prod again changes nothing.
CREATE FUNCTION pria.promote(
    p_adapter_id uuid,
    p_dataset_date date,
    p_force boolean,
    p_reason text,
    p_actor text
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

    IF p_adapter_id IS NOT NULL THEN
        v_target := p_adapter_id;
    ELSE
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
                      HINT = 'run pria-ml eval for that date, or promote an adapter id with '
                             '--force --reason';
        END IF;
    END IF;

    SELECT * INTO v_row FROM pria.model_registry WHERE adapter_id = v_target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no adapter % in model_registry', v_target
            USING ERRCODE = 'PR002', HINT = 'pria-ml history lists the registered adapters';
    END IF;
    IF v_row.status = 'prod' THEN
        RETURN ROW(false, v_target, NULL, NULL,
                   format('%s is already prod; nothing changed', v_target))::pria.transition;
    END IF;
    IF v_row.status = 'archived' THEN
        RAISE EXCEPTION 'adapter % was archived on %; archived adapters are never promoted',
            v_target, v_row.archived_at
            USING ERRCODE = 'PR004', HINT = 'retrain, or promote another candidate';
    END IF;
    IF v_row.gate_passed IS NOT TRUE AND NOT p_force THEN
        RAISE EXCEPTION 'adapter % %', v_target,
            CASE WHEN v_row.gate_passed IS NULL THEN 'has no gate decision (not evaluated)'
                 ELSE format('failed the gate: %s', v_row.gate_reason) END
            USING ERRCODE = 'PR006',
                  HINT = 'promote it anyway only with --force --reason "..." (recorded)';
    END IF;

    RETURN pria._make_prod(v_target, 'promote', v_row.gate_passed IS NOT TRUE AND p_force,
                           p_reason, p_actor);
END
$$;

-- The adapter that was prod before the current one: the previous_prod of the event that made
-- the current prod prod. NULL when there is no prod or it was the first one.
CREATE FUNCTION pria.previous_prod() RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT e.previous_prod
      FROM pria.registry_event e
      JOIN pria.model_registry r ON r.adapter_id = e.adapter_id AND r.status = 'prod'
     WHERE e.action IN ('promote', 'rollback')
     ORDER BY e.event_id DESC
     LIMIT 1;
$$;

-- Bring back the adapter that was prod before the current one, or p_to: an adapter that was
-- prod at some point. The gate is not asked again (it let that adapter through before). Rolling
-- back to the current prod changes nothing.
CREATE FUNCTION pria.rollback(
    p_to uuid,
    p_reason text,
    p_actor text
) RETURNS pria.transition
LANGUAGE plpgsql AS $$
DECLARE
    v_current uuid;
    v_target  uuid;
    v_row     pria.model_registry;
BEGIN
    PERFORM pria.lock_registry();

    SELECT adapter_id INTO v_current FROM pria.model_registry WHERE status = 'prod';
    IF p_to IS NOT NULL THEN
        v_target := p_to;
    ELSE
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

    SELECT * INTO v_row FROM pria.model_registry WHERE adapter_id = v_target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no adapter % in model_registry', v_target
            USING ERRCODE = 'PR002', HINT = 'pria-ml history lists the registered adapters';
    END IF;
    IF v_row.status = 'prod' THEN
        RETURN ROW(false, v_target, NULL, NULL,
                   format('%s is already prod; nothing changed', v_target))::pria.transition;
    END IF;
    IF v_row.status = 'archived' THEN
        RAISE EXCEPTION 'rollback target % was archived on % and is no longer a rollback target',
            v_target, v_row.archived_at
            USING ERRCODE = 'PR004', HINT = 'pass --to ID of an adapter that is not archived';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pria.registry_event
                    WHERE adapter_id = v_target AND action IN ('promote', 'rollback')) THEN
        RAISE EXCEPTION 'adapter % was never prod; rollback only returns to a former prod',
            v_target
            USING ERRCODE = 'PR008', HINT = 'use pria-ml promote for a new candidate';
    END IF;

    RETURN pria._make_prod(v_target, 'rollback', false, p_reason, p_actor);
END
$$;

-- Archive every former prod superseded more than p_older_than ago; return the archived ids.
CREATE FUNCTION pria.archive_superseded(
    p_older_than interval,
    p_actor text
) RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' THEN
        RAISE EXCEPTION 'archive age must be a non-negative interval, got %', p_older_than
            USING ERRCODE = 'PR001';
    END IF;
    PERFORM pria.lock_registry();
    PERFORM set_config('pria.registry_fn', 'archive', true);
    FOR v_id IN
        UPDATE pria.model_registry
           SET status = 'archived', archived_at = now()
         WHERE status = 'candidate'
           AND superseded_at < now() - p_older_than
        RETURNING adapter_id
    LOOP
        INSERT INTO pria.registry_event (action, adapter_id, from_status, to_status, actor,
                                         detail)
        VALUES ('archive', v_id, 'candidate', 'archived', p_actor,
                jsonb_build_object('older_than', p_older_than::text));
        RETURN NEXT v_id;
    END LOOP;
    PERFORM set_config('pria.registry_fn', '', true);
END
$$;

-- Record the outcome of an endpoint rotation call for a prod change (the trail of the hook).
CREATE FUNCTION pria.record_rotation(
    p_event_id bigint,
    p_ok boolean,
    p_detail jsonb,
    p_actor text
) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO pria.registry_event (action, adapter_id, actor, detail)
    SELECT 'rotation', adapter_id, p_actor,
           p_detail || jsonb_build_object('ok', p_ok, 'for_event', p_event_id)
      FROM pria.registry_event
     WHERE event_id = p_event_id;
$$;

-- The status of every adapter as the event log tells it: the last status-bearing event about
-- each adapter decides. Equal to model_registry.status whenever the log is complete.
CREATE VIEW pria.registry_replay AS
WITH touches AS (
    SELECT event_id, adapter_id,
           CASE WHEN action = 'register' THEN 'candidate' ELSE to_status END AS status
      FROM pria.registry_event
     WHERE action IN ('register', 'promote', 'rollback', 'archive')
    UNION ALL
    SELECT event_id, previous_prod, 'candidate'
      FROM pria.registry_event
     WHERE action IN ('promote', 'rollback') AND previous_prod IS NOT NULL
)
SELECT DISTINCT ON (adapter_id) adapter_id, status
  FROM touches
 ORDER BY adapter_id, event_id DESC;

-- One row per event with the adapter's dataset date, newest first: the history view.
CREATE VIEW pria.registry_history AS
SELECT e.event_id, e.occurred_at, e.action, e.adapter_id, r.dataset_date, e.from_status,
       e.to_status, e.previous_prod, e.forced, e.reason, e.actor, e.detail
  FROM pria.registry_event e
  JOIN pria.model_registry r USING (adapter_id)
 ORDER BY e.event_id DESC;
