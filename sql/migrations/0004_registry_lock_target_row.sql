-- Promote and rollback read their target row FOR UPDATE before checking it.
--
-- 0003 checked the target's status and gate decision on a plain read and locked the row only
-- when changing it, so a gate decision (or any change of that row) committed in between was
-- not seen: a candidate whose gate just failed could reach prod. Locking the row before the
-- checks makes them see the committed state. Same bodies otherwise.

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

    SELECT * INTO v_row FROM pria.model_registry WHERE adapter_id = v_target FOR UPDATE;
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

CREATE OR REPLACE FUNCTION pria.rollback(
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

    SELECT * INTO v_row FROM pria.model_registry WHERE adapter_id = v_target FOR UPDATE;
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
