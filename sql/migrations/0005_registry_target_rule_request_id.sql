-- One rule for a promote / rollback target, and a request id on every event.
--
-- 1. pria._target_row: the checks of the target row that promote and rollback both made (and
--    0004 copied again) live in one function. It locks the row, refuses an unknown or archived
--    target, and applies the check of the action: a promotion needs a passing gate decision
--    unless forced; a rollback only returns to a former prod. promote / rollback call it, then
--    pria._make_prod (unchanged).
-- 2. registry_event.request_id: each call of pria-ml sets pria.request_id for its transaction
--    and every event it writes carries it. When the connection is lost during COMMIT, the
--    caller reads the log for its request id to learn whether the change was committed, rather
--    than running a rollback (not idempotent: it toggles) a second time.
-- 3. The hint for a date without a gated candidate no longer names a command that does not
--    exist.

ALTER TABLE pria.registry_event
    ADD COLUMN request_id uuid
        DEFAULT nullif(current_setting('pria.request_id', true), '')::uuid;
COMMENT ON COLUMN pria.registry_event.request_id IS
    'The pria-ml call that wrote the event (transaction setting pria.request_id); NULL before 0005.';
CREATE INDEX registry_event_request ON pria.registry_event (request_id)
    WHERE request_id IS NOT NULL;

-- The target row of a promote / rollback, locked, after the checks of p_action ('promote' or
-- 'rollback'; p_force only matters to promote). A target that is already prod is returned
-- unchecked: the caller's transition is then a no-op.
CREATE FUNCTION pria._target_row(
    p_target uuid,
    p_action text,
    p_force boolean
) RETURNS pria.model_registry
LANGUAGE plpgsql AS $$
DECLARE
    v_row pria.model_registry;
BEGIN
    IF p_action NOT IN ('promote', 'rollback') THEN
        RAISE EXCEPTION 'pria._target_row: unknown action %', p_action;
    END IF;
    SELECT * INTO v_row FROM pria.model_registry WHERE adapter_id = p_target FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no adapter % in model_registry', p_target
            USING ERRCODE = 'PR002', HINT = 'pria-ml history lists the registered adapters';
    END IF;
    IF v_row.status = 'prod' THEN
        RETURN v_row;
    END IF;
    IF v_row.status = 'archived' THEN
        IF p_action = 'promote' THEN
            RAISE EXCEPTION 'adapter % was archived on %; archived adapters are never promoted',
                p_target, v_row.archived_at
                USING ERRCODE = 'PR004', HINT = 'retrain, or promote another candidate';
        END IF;
        RAISE EXCEPTION 'rollback target % was archived on % and is no longer a rollback target',
            p_target, v_row.archived_at
            USING ERRCODE = 'PR004', HINT = 'pass --to ID of an adapter that is not archived';
    END IF;
    IF p_action = 'promote' AND v_row.gate_passed IS NOT TRUE AND NOT p_force THEN
        RAISE EXCEPTION 'adapter % %', p_target,
            CASE WHEN v_row.gate_passed IS NULL THEN 'has no gate decision (not evaluated)'
                 ELSE format('failed the gate: %s', v_row.gate_reason) END
            USING ERRCODE = 'PR006',
                  HINT = 'promote it anyway only with --force --reason "..." (recorded)';
    END IF;
    IF p_action = 'rollback' AND NOT EXISTS (
        SELECT 1 FROM pria.registry_event
         WHERE adapter_id = p_target AND action IN ('promote', 'rollback')) THEN
        RAISE EXCEPTION 'adapter % was never prod; rollback only returns to a former prod',
            p_target
            USING ERRCODE = 'PR008', HINT = 'use pria-ml promote for a new candidate';
    END IF;
    RETURN v_row;
END
$$;

CREATE OR REPLACE FUNCTION pria.promote(
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
                           p_reason, p_actor);
END
$$;

CREATE OR REPLACE FUNCTION pria.rollback(
    p_to uuid,
    p_reason text,
    p_actor text
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
    RETURN pria._make_prod(v_target, 'rollback', false, p_reason, p_actor);
END
$$;

-- The events one pria-ml call wrote (its request id), oldest first: how a caller whose COMMIT
-- went unanswered learns what it committed.
CREATE FUNCTION pria.request_events(p_request_id uuid)
RETURNS SETOF pria.registry_event
LANGUAGE sql STABLE AS $$
    SELECT * FROM pria.registry_event WHERE request_id = p_request_id ORDER BY event_id;
$$;
