-- Human spot-check (spec section 6.4): each week a QA reviewer judges 25 samples of the prod
-- adapter's evaluated outputs. `pria-ml spot-check record FILE` stores the verdicts here, one
-- row per reviewed sample, through pria.record_spot_check, which also writes a `spot_check`
-- event so the review shows up in `pria-ml history` next to promotions and rollbacks.

ALTER TABLE pria.registry_event DROP CONSTRAINT registry_event_action_check;
ALTER TABLE pria.registry_event ADD CONSTRAINT registry_event_action_check
    CHECK (action IN ('register', 'gate', 'promote', 'rollback', 'archive', 'rotation',
                      'spot_check'));

CREATE TABLE pria.spot_check_verdict (
    verdict_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    adapter_id      uuid        NOT NULL REFERENCES pria.model_registry (adapter_id),
    iso_week        text        NOT NULL CHECK (iso_week ~ '^[0-9]{4}-W[0-9]{2}$'),
    prompt_sha256   text        NOT NULL CHECK (prompt_sha256 ~ '^[0-9a-f]{16}$'),
    verdict         text        NOT NULL CHECK (verdict IN ('ok', 'wrong', 'unsafe')),
    note            text,
    reviewer        text        NOT NULL CHECK (btrim(reviewer) <> ''),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (adapter_id, iso_week, prompt_sha256)
);

COMMENT ON TABLE pria.spot_check_verdict IS
    'QA verdicts on sampled outputs of the prod adapter, one row per sample and ISO week.';

-- Store one review sheet: p_verdicts is a JSON array of {prompt_sha256, verdict, note}. A sheet
-- recorded again for the same adapter and week replaces the earlier verdicts of its samples.
-- Returns the number of verdicts stored.
CREATE FUNCTION pria.record_spot_check(
    p_adapter_id uuid,
    p_iso_week text,
    p_verdicts jsonb,
    p_reviewer text,
    p_actor text
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
                                         reviewer)
    SELECT p_adapter_id, p_iso_week, v ->> 'prompt_sha256', v ->> 'verdict',
           nullif(btrim(v ->> 'note'), ''), p_reviewer
      FROM jsonb_array_elements(p_verdicts) AS v
    ON CONFLICT (adapter_id, iso_week, prompt_sha256) DO UPDATE
       SET verdict = excluded.verdict, note = excluded.note, reviewer = excluded.reviewer,
           recorded_at = now();
    GET DIAGNOSTICS v_count = ROW_COUNT;

    SELECT jsonb_object_agg(verdict, n) INTO v_summary
      FROM (SELECT verdict, count(*) AS n FROM pria.spot_check_verdict
             WHERE adapter_id = p_adapter_id AND iso_week = p_iso_week GROUP BY verdict) s;

    INSERT INTO pria.registry_event (action, adapter_id, reason, actor, detail)
    VALUES ('spot_check', p_adapter_id,
            format('spot-check %s by %s: %s ok, %s wrong, %s unsafe', p_iso_week, p_reviewer,
                   coalesce(v_summary ->> 'ok', '0'), coalesce(v_summary ->> 'wrong', '0'),
                   coalesce(v_summary ->> 'unsafe', '0')),
            p_actor,
            jsonb_build_object('iso_week', p_iso_week, 'verdicts', v_summary,
                               'recorded', v_count));
    RETURN v_count;
END
$$;
