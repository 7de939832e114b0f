-- Evaluation and the gate are two stages: `pria-ml eval` measures and records what it measured
-- (the evaluation record, pria_ml/quality/record.py) through pria.record_evaluation; the gate
-- then decides from that record and stores its decision through pria.record_gate_decision. The
-- record lands in metrics_json under "eval" with an `evaluate` event, in one transaction.
-- Recording a candidate's evaluation again (a forced re-run) replaces the record and clears the
-- gate decision taken on the old one, so no decision outlives the measurement it was taken on.

ALTER TABLE pria.registry_event DROP CONSTRAINT registry_event_action_check;
ALTER TABLE pria.registry_event ADD CONSTRAINT registry_event_action_check
    CHECK (action IN ('register', 'evaluate', 'gate', 'promote', 'rollback', 'archive',
                      'rotation', 'spot_check'));

CREATE FUNCTION pria.record_evaluation(
    p_adapter_id uuid,
    p_record     jsonb,
    p_actor      text,
    p_at         timestamptz DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_row pria.model_registry%ROWTYPE;
BEGIN
    IF p_record IS NULL OR jsonb_typeof(p_record) <> 'object'
       OR NOT p_record ? 'schema_version' THEN
        RAISE EXCEPTION 'an evaluation record must be a JSON object with a schema_version'
            USING ERRCODE = 'PR001';
    END IF;
    SELECT * INTO v_row FROM pria.model_registry WHERE adapter_id = p_adapter_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no adapter % in model_registry', p_adapter_id
            USING ERRCODE = 'PR002', HINT = 'pria-ml history lists the registered adapters';
    END IF;
    IF v_row.status <> 'candidate' THEN
        RAISE EXCEPTION 'adapter % is %, not a candidate; only candidates are evaluated',
            p_adapter_id, v_row.status
            USING ERRCODE = 'PR004';
    END IF;

    PERFORM set_config('pria.registry_fn', 'record_evaluation', true);
    UPDATE pria.model_registry
       SET metrics_json    = (metrics_json - 'gate') || jsonb_build_object('eval', p_record),
           safety_flags    = coalesce((p_record #>> '{val,candidate,safety_flags}')::integer,
                                      safety_flags),
           gate_passed     = NULL,
           gate_reason     = NULL,
           gate_decided_at = NULL
     WHERE adapter_id = p_adapter_id;
    PERFORM set_config('pria.registry_fn', '', true);

    INSERT INTO pria.registry_event (action, adapter_id, from_status, to_status, actor, detail,
                                     occurred_at)
    VALUES ('evaluate', p_adapter_id, 'candidate', 'candidate', p_actor,
            jsonb_build_object('schema_version', p_record -> 'schema_version',
                               'baseline_id', p_record -> 'baseline_id'),
            coalesce(p_at, clock_timestamp()));
END
$$;

COMMENT ON FUNCTION pria.record_evaluation(uuid, jsonb, text, timestamptz) IS
    'Store a candidate''s evaluation record (metrics_json.eval); clears an older gate decision.';
