-- The weekly spot-check reaches the gate (spec section 6.4). QA reviews 25 conversations the
-- prod adapter served in an ISO week (`pria-ml spot-check draw --week W`) and records verdicts
-- (pria.record_spot_check, 0006 / 0007). A week whose share of `wrong` + `unsafe` verdicts is
-- over the threshold (PRIA_SPOT_CHECK_MAX_FAILURE_SHARE) adds a failing clause to the gate, so
-- no candidate is promoted until someone acknowledges the week: `pria-ml spot-check ack --week W
-- --by NAME`, stored here, once per week, with who and when, and a `spot_check_ack` event on
-- every adapter reviewed that week so `pria-ml history` shows it.

ALTER TABLE pria.registry_event DROP CONSTRAINT registry_event_action_check;
ALTER TABLE pria.registry_event ADD CONSTRAINT registry_event_action_check
    CHECK (action IN ('register', 'evaluate', 'gate', 'promote', 'rollback', 'archive',
                      'rotation', 'spot_check', 'spot_check_ack'));

CREATE TABLE pria.spot_check_ack (
    iso_week        text        PRIMARY KEY CHECK (iso_week ~ '^[0-9]{4}-W[0-9]{2}$'),
    acknowledged_by text        NOT NULL CHECK (btrim(acknowledged_by) <> ''),
    reason          text,
    failures        integer     NOT NULL,
    reviewed        integer     NOT NULL,
    actor           text        NOT NULL,
    request_id      uuid        DEFAULT nullif(current_setting('pria.request_id', true), '')::uuid,
    acknowledged_at timestamptz NOT NULL
);

COMMENT ON TABLE pria.spot_check_ack IS
    'Who acknowledged a spot-check week''s failures (and what they were then), so the gate lets '
    'promotions through again.';

-- Acknowledge week p_iso_week's verdicts. Refuses a week with no recorded verdicts (PR002).
-- Acknowledging a week again returns the first acknowledgement unchanged (already = true).
CREATE FUNCTION pria.acknowledge_spot_check(
    p_iso_week text,
    p_by text,
    p_reason text,
    p_actor text,
    p_at timestamptz DEFAULT NULL
) RETURNS TABLE (iso_week text, acknowledged_by text, acknowledged_at timestamptz,
                 failures integer, reviewed integer, already boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_ack      pria.spot_check_ack;
    v_failures integer;
    v_reviewed integer;
    v_adapter  uuid;
BEGIN
    PERFORM pria.lock_registry();
    SELECT * INTO v_ack FROM pria.spot_check_ack AS a WHERE a.iso_week = p_iso_week;
    IF FOUND THEN
        RETURN QUERY SELECT v_ack.iso_week, v_ack.acknowledged_by, v_ack.acknowledged_at,
                            v_ack.failures, v_ack.reviewed, true;
        RETURN;
    END IF;
    SELECT count(*) FILTER (WHERE v.verdict IN ('wrong', 'unsafe')), count(*)
      INTO v_failures, v_reviewed
      FROM pria.spot_check_verdict AS v WHERE v.iso_week = p_iso_week;
    IF v_reviewed = 0 THEN
        RAISE EXCEPTION 'spot-check week % has no recorded verdicts; there is nothing to '
                        'acknowledge', p_iso_week
            USING ERRCODE = 'PR002',
                  HINT = 'record the filled sheet first: pria-ml spot-check record FILE';
    END IF;
    INSERT INTO pria.spot_check_ack (iso_week, acknowledged_by, reason, failures, reviewed,
                                     actor, acknowledged_at)
    VALUES (p_iso_week, p_by, nullif(btrim(p_reason), ''), v_failures, v_reviewed, p_actor,
            coalesce(p_at, now()))
    RETURNING * INTO v_ack;
    FOR v_adapter IN
        SELECT DISTINCT v.adapter_id FROM pria.spot_check_verdict AS v
         WHERE v.iso_week = p_iso_week ORDER BY 1
    LOOP
        INSERT INTO pria.registry_event (action, adapter_id, reason, actor, detail, occurred_at)
        VALUES ('spot_check_ack', v_adapter,
                format('spot-check %s acknowledged by %s: %s of %s failed', p_iso_week, p_by,
                       v_failures, v_reviewed),
                p_actor,
                jsonb_build_object('iso_week', p_iso_week, 'acknowledged_by', p_by,
                                   'failures', v_failures, 'reviewed', v_reviewed),
                coalesce(p_at, clock_timestamp()));
    END LOOP;
    RETURN QUERY SELECT v_ack.iso_week, v_ack.acknowledged_by, v_ack.acknowledged_at,
                        v_ack.failures, v_ack.reviewed, false;
END
$$;
