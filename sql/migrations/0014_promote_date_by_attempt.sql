-- `pria-ml promote --date D` picks the newest *attempt* of D that passed the gate, as train,
-- eval and gate do since 0012 (adapters_of_date.sql), not the newest created_at: a simulated
-- night, or two retrains within one clock tick, may stamp two attempts alike, and then the
-- pick was whichever row the planner met first. Same function, same arguments and errors;
-- only the ORDER BY changes (attempt DESC, then created_at DESC as before 0012's backfill).

CREATE OR REPLACE FUNCTION pria.promote(
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
         ORDER BY (status = 'prod') DESC, gate_passed IS TRUE DESC, attempt DESC, created_at DESC
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
