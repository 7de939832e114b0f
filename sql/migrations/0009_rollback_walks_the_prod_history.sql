-- Rollback walks back the prod history, one promotion at a time (DESIGN.md section 5).
--
-- Until 0008 the rollback target was the previous_prod of the event that made the current prod
-- prod. After one rollback (c -> b) that event is the rollback itself, whose previous_prod is c:
-- a second rollback went forward again to c, the adapter just rolled back from. And archived
-- former prods were refused, so after seven stable days there was nothing to roll back to.
--
-- 1. pria.prod_stack(): the prod history as a stack, replayed from the event log. A promote
--    pushes its adapter; a rollback to an adapter on the stack pops back to its newest entry;
--    a rollback --to an adapter no longer on the stack pushes it. The top is the current prod;
--    the entry below it is the rollback target (pria.previous_prod()).
-- 2. pria.rollback_target(to): the target, with the reason it is the target, refusing exactly
--    what pria.rollback refuses; `pria-ml rollback --dry-run` shows it, rollback uses it.
-- 3. Archived former prods are rollback targets (archival moves them out of the way; whether
--    their files still exist is checked by pria-ml before the call). Promotion still refuses
--    archived adapters.
-- 4. pria.rollback(..., p_from): the prod the caller looked at. When prod is no longer p_from
--    (another rollback won the race), the call changes nothing and says what prod is now, so
--    two on-call engineers rolling back at once step back once, not twice.

CREATE FUNCTION pria.prod_stack() RETURNS uuid[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_stack uuid[] := '{}';
    v_event record;
    v_pos   integer;
BEGIN
    FOR v_event IN
        SELECT action, adapter_id FROM pria.registry_event
         WHERE action IN ('promote', 'rollback')
         ORDER BY event_id
    LOOP
        v_pos := NULL;
        IF v_event.action = 'rollback' THEN
            SELECT max(p) INTO v_pos FROM unnest(array_positions(v_stack, v_event.adapter_id)) p;
        END IF;
        IF v_pos IS NULL THEN
            v_stack := v_stack || v_event.adapter_id;
        ELSE
            v_stack := v_stack[1:v_pos];
        END IF;
    END LOOP;
    RETURN v_stack;
END
$$;

COMMENT ON FUNCTION pria.prod_stack() IS
    'The prod history as a stack replayed from registry_event, oldest first; the last element '
    'is the current prod, the one before it the rollback target.';

CREATE OR REPLACE FUNCTION pria.previous_prod() RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT s[array_length(s, 1) - 1] FROM pria.prod_stack() AS s;
$$;

-- The adapter a rollback would bring back and why, refusing what a rollback refuses:
-- no prod (PR007), nothing before the first prod (PR007), an unknown target (PR002), a target
-- that was never prod (PR008). current_prod is the prod now (NULL when p_to is the only way).
CREATE FUNCTION pria.rollback_target(p_to uuid)
RETURNS TABLE (current_prod uuid, target uuid, why text, archived boolean, depth integer)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_stack   uuid[] := pria.prod_stack();
    v_current uuid;
    v_target  uuid;
    v_since   timestamptz;
    v_row     pria.model_registry;
    v_why     text;
BEGIN
    SELECT adapter_id INTO v_current FROM pria.model_registry WHERE status = 'prod';
    IF p_to IS NULL THEN
        IF v_current IS NULL THEN
            RAISE EXCEPTION 'there is no prod adapter to roll back from'
                USING ERRCODE = 'PR007', HINT = 'promote a candidate with pria-ml promote';
        END IF;
        v_target := v_stack[array_length(v_stack, 1) - 1];
        IF v_target IS NULL THEN
            RAISE EXCEPTION 'prod adapter % is the first prod; there is no previous prod to '
                            'roll back to', v_current
                USING ERRCODE = 'PR007', HINT = 'promote another candidate, or pass --to ID';
        END IF;
        SELECT occurred_at INTO v_since FROM pria.registry_event
         WHERE adapter_id = v_current AND action IN ('promote', 'rollback')
         ORDER BY event_id DESC LIMIT 1;
        v_why := format('%s was prod before the current prod %s took over on %s; the prod '
                        'history has %s more adapter(s) before it', v_target, v_current,
                        v_since, array_length(v_stack, 1) - 2);
    ELSE
        v_target := p_to;
        SELECT max(occurred_at) INTO v_since FROM pria.registry_event
         WHERE adapter_id = v_target AND action IN ('promote', 'rollback');
        v_why := format('--to %s: it was last made prod on %s', v_target, v_since);
    END IF;

    SELECT * INTO v_row FROM pria.model_registry WHERE adapter_id = v_target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no adapter % in model_registry', v_target
            USING ERRCODE = 'PR002', HINT = 'pria-ml history lists the registered adapters';
    END IF;
    IF v_since IS NULL THEN
        RAISE EXCEPTION 'adapter % was never prod; rollback only returns to a former prod',
            v_target
            USING ERRCODE = 'PR008', HINT = 'use pria-ml promote for a new candidate';
    END IF;
    IF v_row.status = 'archived' THEN
        v_why := v_why || format(' (archived on %s: still restorable while its files exist)',
                                 v_row.archived_at);
    END IF;
    RETURN QUERY SELECT v_current, v_target, v_why, v_row.status = 'archived',
                        coalesce(array_length(v_stack, 1), 0);
END
$$;

-- Promote refuses archived adapters; rollback returns to them (the rest as in 0005).
CREATE OR REPLACE FUNCTION pria._target_row(
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
    IF v_row.status = 'archived' AND p_action = 'promote' THEN
        RAISE EXCEPTION 'adapter % was archived on %; archived adapters are never promoted',
            p_target, v_row.archived_at
            USING ERRCODE = 'PR004',
                  HINT = 'a former prod comes back with pria-ml rollback --to ID';
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

DROP FUNCTION pria.rollback(uuid, text, text, timestamptz);
CREATE FUNCTION pria.rollback(
    p_to uuid,
    p_reason text,
    p_actor text,
    p_at timestamptz DEFAULT NULL,
    p_from uuid DEFAULT NULL
) RETURNS pria.transition
LANGUAGE plpgsql AS $$
DECLARE
    v_current uuid;
    v_target  uuid;
    v_event   record;
BEGIN
    PERFORM pria.lock_registry();

    SELECT adapter_id INTO v_current FROM pria.model_registry WHERE status = 'prod';
    IF p_from IS NOT NULL AND v_current IS DISTINCT FROM p_from THEN
        SELECT event_id, action, occurred_at INTO v_event FROM pria.registry_event
         WHERE action IN ('promote', 'rollback') ORDER BY event_id DESC LIMIT 1;
        RETURN ROW(false, v_current, NULL, NULL,
                   format('prod is already %s, not %s (changed by %s event %s on %s); nothing '
                          'changed', v_current, p_from, v_event.action, v_event.event_id,
                          v_event.occurred_at))::pria.transition;
    END IF;

    SELECT t.target INTO v_target FROM pria.rollback_target(p_to) t;
    IF (pria._target_row(v_target, 'rollback', false)).status = 'prod' THEN
        RETURN ROW(false, v_target, NULL, NULL,
                   format('%s is already prod; nothing changed', v_target))::pria.transition;
    END IF;
    RETURN pria._make_prod(v_target, 'rollback', false, p_reason, p_actor, p_at);
END
$$;

COMMENT ON FUNCTION pria.rollback(uuid, text, text, timestamptz, uuid) IS
    'Bring back the adapter below the current prod on the prod stack (or p_to, a former prod, '
    'archived or not); a no-op when prod is no longer p_from.';
