-- pgTAP tests of the model_registry update logic (spec prompt block ML1-REGISTRY-TEST).
-- Each pria_test.test_* function is run by runtests() and rolled back afterwards; see
-- tests/registry/test_registry_pgtap.py.

CREATE SCHEMA pria_test;

-- A registered candidate of p_day; p_gate NULL leaves it ungated.
CREATE FUNCTION pria_test.candidate(p_day date, p_gate boolean DEFAULT true) RETURNS uuid
LANGUAGE plpgsql AS $body$
DECLARE
    v_uri text := format('file:///adapters/%s-%s.safetensors', p_day, gen_random_uuid());
    v_id  uuid;
BEGIN
    v_id := pria.register_candidate(p_day, v_uri, encode(sha256(convert_to(v_uri, 'UTF8')), 'hex'),
                                    'tiny-mistral', '{"train_loss": 0.5}', 'pgtap');
    IF p_gate IS NOT NULL THEN
        PERFORM pria.record_gate_decision(v_id, p_gate,
                                          CASE WHEN p_gate THEN 'passed' ELSE 'failed' END,
                                          '{"accuracy_delta": 1.0}', 'pgtap');
    END IF;
    RETURN v_id;
END
$body$;

CREATE FUNCTION pria_test.status(p_id uuid) RETURNS text
LANGUAGE sql AS $$ SELECT status FROM pria.model_registry WHERE adapter_id = p_id $$;

CREATE FUNCTION pria_test.promote(p_id uuid) RETURNS pria.transition
LANGUAGE sql AS $$ SELECT pria.promote(p_id, NULL, false, NULL, 'pgtap') $$;

CREATE FUNCTION pria_test.rollback(p_to uuid DEFAULT NULL) RETURNS pria.transition
LANGUAGE sql AS $$ SELECT pria.rollback(p_to, NULL, 'pgtap') $$;

CREATE FUNCTION pria_test.prod_count() RETURNS bigint
LANGUAGE sql AS $$ SELECT count(*) FROM pria.model_registry WHERE status = 'prod' $$;

-- Pretend adapter p_id was superseded p_age ago (tests only; bypasses the guard on purpose).
CREATE FUNCTION pria_test.backdate_supersession(p_id uuid, p_age interval) RETURNS void
LANGUAGE plpgsql AS $body$
BEGIN
    PERFORM set_config('pria.registry_fn', 'pgtap', true);
    UPDATE pria.model_registry SET superseded_at = now() - p_age WHERE adapter_id = p_id;
    PERFORM set_config('pria.registry_fn', '', true);
END
$body$;

CREATE FUNCTION pria_test.test_schema_has_spec_columns() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
BEGIN
    RETURN NEXT has_table('pria', 'model_registry', 'model_registry exists');
    RETURN NEXT has_table('pria', 'registry_event', 'registry_event exists');
    RETURN NEXT col_is_pk('pria', 'model_registry', 'adapter_id', 'adapter_id is the key');
    RETURN NEXT col_type_is('pria', 'model_registry', 'adapter_id', 'uuid', 'adapter_id uuid');
    RETURN NEXT col_type_is('pria', 'model_registry', 'created_at', 'timestamp with time zone',
                            'created_at timestamptz');
    RETURN NEXT col_type_is('pria', 'model_registry', 'metrics_json', 'jsonb', 'metrics jsonb');
    RETURN NEXT col_type_is('pria', 'model_registry', 'safety_flags', 'integer', 'safety int');
    RETURN NEXT col_type_is('pria', 'model_registry', 'status', 'text', 'status text');
    RETURN NEXT col_type_is('pria', 'model_registry', 'dataset_date', 'date', 'dataset date');
    RETURN NEXT has_column('pria', 'model_registry', 'artifact_sha256', 'artifact checksum');
    RETURN NEXT has_column('pria', 'model_registry', 'superseded_at', 'supersession time');
    RETURN NEXT has_index('pria', 'model_registry', 'model_registry_one_prod',
                          'the one-prod index exists');
    RETURN NEXT is(
        (SELECT indisunique AND indpred IS NOT NULL FROM pg_index
          WHERE indexrelid = 'pria.model_registry_one_prod'::regclass),
        true, 'the one-prod index is unique and partial');
    RETURN NEXT throws_ok(
        $q$ INSERT INTO pria.model_registry (dataset_date, artifact_uri, artifact_sha256,
                                            base_model, status)
            VALUES ('2026-11-01', 'x', repeat('a', 64), 'm', 'staging') $q$,
        '23514', NULL, 'status outside candidate/prod/archived is refused');
END
$body$;

CREATE FUNCTION pria_test.test_database_refuses_a_second_prod() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    a uuid := pria_test.candidate('2026-11-01');
    b uuid := pria_test.candidate('2026-11-02');
BEGIN
    PERFORM pria_test.promote(a);
    PERFORM set_config('pria.registry_fn', 'pgtap', true);
    RETURN NEXT throws_ok(
        format($q$ UPDATE pria.model_registry SET status = 'prod', promoted_at = now()
                   WHERE adapter_id = %L $q$, b),
        '23505', NULL, 'a second prod row violates the partial unique index');
    RETURN NEXT throws_ok(
        format($q$ INSERT INTO pria.model_registry (dataset_date, artifact_uri, artifact_sha256,
                       base_model, status, promoted_at)
                   VALUES ('2026-11-03', 'y', repeat('b', 64), 'm', 'prod', now()) $q$),
        '23505', NULL, 'inserting a second prod row is refused too');
    PERFORM set_config('pria.registry_fn', '', true);
    RETURN NEXT is(pria_test.prod_count(), 1::bigint, 'still exactly one prod');
END
$body$;

CREATE FUNCTION pria_test.test_event_log_is_append_only() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
BEGIN
    PERFORM pria_test.candidate('2026-11-01');
    RETURN NEXT throws_ok('UPDATE pria.registry_event SET reason = ''x''', 'PR010', NULL,
                          'UPDATE of an event is refused');
    RETURN NEXT throws_ok('DELETE FROM pria.registry_event', 'PR010', NULL,
                          'DELETE of an event is refused');
    RETURN NEXT throws_ok('TRUNCATE pria.registry_event CASCADE', 'PR010', NULL,
                          'TRUNCATE of the event log is refused');
    RETURN NEXT is((SELECT count(*) FROM pria.registry_event), 2::bigint,
                   'register and gate events are still there');
END
$body$;

CREATE FUNCTION pria_test.test_rows_change_only_through_registry_functions() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    a uuid := pria_test.candidate('2026-11-01');
BEGIN
    RETURN NEXT throws_ok(
        format($q$ UPDATE pria.model_registry SET status = 'prod', promoted_at = now()
                   WHERE adapter_id = %L $q$, a),
        'PR011', NULL, 'a direct status UPDATE is refused');
    RETURN NEXT throws_ok(format('DELETE FROM pria.model_registry WHERE adapter_id = %L', a),
                          'PR011', NULL, 'a DELETE is refused');
    PERFORM set_config('pria.registry_fn', 'pgtap', true);
    RETURN NEXT throws_ok(
        format($q$ UPDATE pria.model_registry SET artifact_uri = 'file:///other'
                   WHERE adapter_id = %L $q$, a),
        'PR011', NULL, 'the artifact of a row is immutable even inside a registry function');
    PERFORM set_config('pria.registry_fn', '', true);
    RETURN NEXT is(pria_test.status(a), 'candidate', 'the row is unchanged');
END
$body$;

CREATE FUNCTION pria_test.test_register_candidate() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    sha text := repeat('c', 64);
    a   uuid;
BEGIN
    a := pria.register_candidate('2026-11-05', 'file:///a.safetensors', sha, 'tiny',
                                 '{"safety_flags": 2}', 'pgtap');
    RETURN NEXT is(pria_test.status(a), 'candidate', 'a new adapter is a candidate');
    RETURN NEXT is((SELECT safety_flags FROM pria.model_registry WHERE adapter_id = a), 2,
                   'safety_flags comes from the metrics');
    RETURN NEXT results_eq(
        format($q$ SELECT action, to_status FROM pria.registry_event WHERE adapter_id = %L $q$, a),
        $$ VALUES ('register'::text, 'candidate'::text) $$, 'a register event is written');
    RETURN NEXT is(pria.register_candidate('2026-11-05', 'file:///a.safetensors', sha, 'tiny',
                                           '{}', 'pgtap'),
                   a, 'registering the same artifact again returns the same id');
    RETURN NEXT is((SELECT count(*) FROM pria.registry_event), 1::bigint,
                   'and writes no second event');
    RETURN NEXT throws_ok(
        $q$ SELECT pria.register_candidate('2026-11-05', 'file:///a.safetensors',
                                           repeat('d', 64), 'tiny', '{}', 'pgtap') $q$,
        'PR003', NULL, 'the same URI with another checksum is refused');
    RETURN NEXT throws_ok(
        $q$ SELECT pria.register_candidate('2026-11-05', 'file:///b', 'XYZ', 'tiny', '{}', 'p') $q$,
        'PR001', NULL, 'a malformed checksum is refused');
    RETURN NEXT throws_ok(
        $q$ SELECT pria.register_candidate('2026-11-05', 'file:///b', repeat('e', 64), 'tiny',
                                           '[1]', 'p') $q$,
        'PR001', NULL, 'metrics that are not an object are refused');
END
$body$;

CREATE FUNCTION pria_test.test_record_gate_decision() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    a uuid := pria_test.candidate('2026-11-01', NULL);
BEGIN
    PERFORM pria.record_gate_decision(a, false, 'override_delta -0.2 >= -1.0',
                                      '{"override_delta": -0.2, "safety_flags": 4}', 'pgtap');
    RETURN NEXT results_eq(
        format($q$ SELECT gate_passed, gate_reason, safety_flags,
                          metrics_json ->> 'train_loss', metrics_json ->> 'override_delta'
                     FROM pria.model_registry WHERE adapter_id = %L $q$, a),
        $$ VALUES (false, 'override_delta -0.2 >= -1.0'::text, 4, '0.5'::text, '-0.2'::text) $$,
        'the decision is recorded and the metrics merged');
    RETURN NEXT is((SELECT detail -> 'passed' FROM pria.registry_event
                     WHERE adapter_id = a AND action = 'gate'), 'false'::jsonb,
                   'a gate event records the decision');
    RETURN NEXT throws_ok(
        $q$ SELECT pria.record_gate_decision(gen_random_uuid(), true, 'ok', '{}', 'p') $q$,
        'PR002', NULL, 'an unknown adapter is refused');
    RETURN NEXT throws_ok(
        format($q$ SELECT pria.record_gate_decision(%L, true, '', '{}', 'p') $q$, a),
        'PR001', NULL, 'a decision without a reason is refused');
    PERFORM pria.record_gate_decision(a, true, 'passed', '{}', 'pgtap');
    PERFORM pria_test.promote(a);
    RETURN NEXT throws_ok(
        format($q$ SELECT pria.record_gate_decision(%L, false, 'late', '{}', 'p') $q$, a),
        'PR004', NULL, 'the prod adapter gets no gate decision');
END
$body$;

CREATE FUNCTION pria_test.test_promote_supersedes_the_current_prod() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    a uuid := pria_test.candidate('2026-11-01');
    b uuid := pria_test.candidate('2026-11-02');
    t pria.transition;
BEGIN
    t := pria_test.promote(a);
    RETURN NEXT ok(t.changed AND t.previous_prod IS NULL, 'the first promotion replaces nothing');
    RETURN NEXT is(pria_test.status(a), 'prod', 'a is prod');
    t := pria_test.promote(b);
    RETURN NEXT is(t.previous_prod, a, 'promoting b reports a as the previous prod');
    RETURN NEXT is(pria_test.status(b), 'prod', 'b is prod');
    RETURN NEXT results_eq(
        format($q$ SELECT status, superseded_at IS NOT NULL FROM pria.model_registry
                    WHERE adapter_id = %L $q$, a),
        $$ VALUES ('candidate'::text, true) $$, 'a is a superseded candidate');
    RETURN NEXT results_eq(
        format($q$ SELECT action, adapter_id, previous_prod, forced FROM pria.registry_event
                    WHERE event_id = %s $q$, t.event_id),
        format($q$ VALUES ('promote'::text, %L::uuid, %L::uuid, false) $q$, b, a),
        'the promote event names both adapters');
    RETURN NEXT is(pria_test.prod_count(), 1::bigint, 'exactly one prod');
END
$body$;

CREATE FUNCTION pria_test.test_promote_of_current_prod_is_a_no_op() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    a uuid := pria_test.candidate('2026-11-01');
    n bigint;
    t pria.transition;
BEGIN
    PERFORM pria_test.promote(a);
    n := (SELECT count(*) FROM pria.registry_event);
    t := pria_test.promote(a);
    RETURN NEXT ok(NOT t.changed, 'nothing changed');
    RETURN NEXT matches(t.message, 'already prod', 'and the message says so');
    RETURN NEXT is((SELECT count(*) FROM pria.registry_event), n, 'no event was written');
END
$body$;

CREATE FUNCTION pria_test.test_promote_refuses_ungated_and_failed_candidates() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    ungated uuid := pria_test.candidate('2026-11-01', NULL);
    failed  uuid := pria_test.candidate('2026-11-02', false);
    t       pria.transition;
BEGIN
    RETURN NEXT throws_ok(format('SELECT pria_test.promote(%L)', ungated), 'PR006', NULL,
                          'an ungated candidate is refused');
    RETURN NEXT throws_ok(format('SELECT pria_test.promote(%L)', failed), 'PR006', NULL,
                          'a failed candidate is refused');
    RETURN NEXT throws_ok(
        format($q$ SELECT pria.promote(%L, NULL, true, ' ', 'p') $q$, failed),
        'PR001', NULL, 'forcing without a reason is refused');
    RETURN NEXT is(pria_test.prod_count(), 0::bigint, 'nothing was promoted');
    t := pria.promote(failed, NULL, true, 'hotfix approved by on-call', 'pgtap');
    RETURN NEXT is(pria_test.status(failed), 'prod', 'forced with a reason, it is promoted');
    RETURN NEXT results_eq(
        format('SELECT forced, reason FROM pria.registry_event WHERE event_id = %s', t.event_id),
        $$ VALUES (true, 'hotfix approved by on-call'::text) $$,
        'the event records the force and its reason');
END
$body$;

CREATE FUNCTION pria_test.test_promote_by_date_takes_the_gated_candidate() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    failed uuid := pria_test.candidate('2026-11-10', false);
    passed uuid := pria_test.candidate('2026-11-10', true);
    later  uuid := pria_test.candidate('2026-11-10', false);
    t      pria.transition;
BEGIN
    RETURN NEXT throws_ok(
        $q$ SELECT pria.promote(NULL, '2026-11-11', false, NULL, 'p') $q$,
        'PR005', NULL, 'a date with no gated candidate is refused');
    RETURN NEXT throws_ok(
        $q$ SELECT pria.promote(NULL, NULL, false, NULL, 'p') $q$,
        'PR001', NULL, 'neither an id nor a date is refused');
    t := pria.promote(NULL, '2026-11-10', false, NULL, 'pgtap');
    RETURN NEXT is(t.adapter_id, passed, 'the candidate that passed the gate is promoted');
    t := pria.promote(NULL, '2026-11-10', false, NULL, 'pgtap');
    RETURN NEXT ok(NOT t.changed, 'promoting the same date again is a no-op');
    RETURN NEXT isnt(pria_test.status(later), 'prod', 'a failed candidate is not picked');
END
$body$;

CREATE FUNCTION pria_test.test_promote_unknown_or_archived_adapter_is_refused() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    a uuid := pria_test.candidate('2026-11-01');
    b uuid := pria_test.candidate('2026-11-02');
BEGIN
    RETURN NEXT throws_ok('SELECT pria_test.promote(gen_random_uuid())', 'PR002', NULL,
                          'an unknown adapter is refused');
    PERFORM pria_test.promote(a);
    PERFORM pria_test.promote(b);
    PERFORM pria_test.backdate_supersession(a, interval '8 days');
    PERFORM pria.archive_superseded(interval '7 days', 'pgtap');
    RETURN NEXT throws_ok(format('SELECT pria_test.promote(%L)', a), 'PR004', NULL,
                          'an archived adapter is refused');
    RETURN NEXT throws_ok(
        format($q$ SELECT pria.promote(%L, NULL, true, 'really', 'p') $q$, a),
        'PR004', NULL, 'even when forced');
    RETURN NEXT is(pria_test.status(b), 'prod', 'prod is unchanged');
END
$body$;

CREATE FUNCTION pria_test.test_rollback_restores_the_previous_prod() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    a uuid := pria_test.candidate('2026-11-01');
    b uuid := pria_test.candidate('2026-11-02');
    c uuid := pria_test.candidate('2026-11-03');
    t pria.transition;
BEGIN
    PERFORM pria_test.promote(a);
    PERFORM pria_test.promote(b);
    PERFORM pria_test.promote(c);
    RETURN NEXT is(pria.previous_prod(), b, 'previous_prod() reads b from the event log');
    t := pria_test.rollback();
    RETURN NEXT is(t.adapter_id, b, 'rollback brings b back');
    RETURN NEXT is(t.previous_prod, c, 'replacing c');
    RETURN NEXT is(pria_test.status(c), 'candidate', 'c is superseded');
    RETURN NEXT results_eq(
        format('SELECT action, previous_prod FROM pria.registry_event WHERE event_id = %s',
               t.event_id),
        format($q$ VALUES ('rollback'::text, %L::uuid) $q$, c), 'a rollback event is written');
    t := pria_test.rollback();
    RETURN NEXT is(t.adapter_id, a, 'a second rollback walks back to a (prod before b)');
    t := pria_test.rollback(c);
    RETURN NEXT is(t.adapter_id, c, 'rollback --to the adapter rolled back from');
    t := pria_test.rollback(a);
    RETURN NEXT is(t.adapter_id, a, 'rollback --to a former prod');
    t := pria_test.rollback(a);
    RETURN NEXT ok(NOT t.changed, 'rollback --to the current prod is a no-op');
    RETURN NEXT is(pria_test.prod_count(), 1::bigint, 'exactly one prod');
END
$body$;

CREATE FUNCTION pria_test.test_rollback_refusals() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    a     uuid := pria_test.candidate('2026-11-01');
    b     uuid := pria_test.candidate('2026-11-02');
    never uuid := pria_test.candidate('2026-11-03');
BEGIN
    RETURN NEXT throws_ok('SELECT pria_test.rollback()', 'PR007', NULL,
                          'rollback with no prod is refused');
    PERFORM pria_test.promote(a);
    RETURN NEXT throws_ok('SELECT pria_test.rollback()', 'PR007', NULL,
                          'rollback of the first prod is refused (no previous prod)');
    RETURN NEXT throws_ok(format('SELECT pria_test.rollback(%L)', never), 'PR008', NULL,
                          'rollback --to an adapter that was never prod is refused');
    RETURN NEXT throws_ok('SELECT pria_test.rollback(gen_random_uuid())', 'PR002', NULL,
                          'rollback --to an unknown adapter is refused');
    RETURN NEXT is(pria_test.status(a), 'prod', 'prod is unchanged by every refusal');
END
$body$;

CREATE FUNCTION pria_test.test_archive_superseded_after_seven_days() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    old    uuid := pria_test.candidate('2026-11-01');
    recent uuid := pria_test.candidate('2026-11-02');
    prod   uuid := pria_test.candidate('2026-11-03');
    never  uuid := pria_test.candidate('2026-11-04');
BEGIN
    PERFORM pria_test.promote(old);
    PERFORM pria_test.promote(recent);
    PERFORM pria_test.promote(prod);
    PERFORM pria_test.backdate_supersession(old, interval '7 days 1 minute');
    PERFORM pria_test.backdate_supersession(recent, interval '6 days 23 hours');
    RETURN NEXT results_eq($$ SELECT pria.archive_superseded(interval '7 days', 'pgtap') $$,
                           format('VALUES (%L::uuid)', old), 'only the old former prod');
    RETURN NEXT results_eq(
        format($q$ SELECT status, archived_at IS NOT NULL FROM pria.model_registry
                    WHERE adapter_id = %L $q$, old),
        $$ VALUES ('archived'::text, true) $$, 'it is archived with a timestamp');
    RETURN NEXT is(pria_test.status(recent), 'candidate', 'a recent former prod stays');
    RETURN NEXT is(pria_test.status(prod), 'prod', 'prod stays');
    RETURN NEXT is(pria_test.status(never), 'candidate', 'a never-promoted candidate stays');
    RETURN NEXT is((SELECT count(*) FROM pria.registry_event WHERE action = 'archive'), 1::bigint,
                   'one archive event');
    RETURN NEXT is_empty($$ SELECT pria.archive_superseded(interval '7 days', 'pgtap') $$,
                         'archiving again archives nothing');
    RETURN NEXT throws_ok($$ SELECT pria.archive_superseded(interval '-1 day', 'p') $$,
                          'PR001', NULL, 'a negative age is refused');
END
$body$;

CREATE FUNCTION pria_test.test_replaying_the_event_log_reproduces_the_state() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    a uuid := pria_test.candidate('2026-11-01');
    b uuid := pria_test.candidate('2026-11-02');
    c uuid := pria_test.candidate('2026-11-03');
BEGIN
    PERFORM pria_test.candidate('2026-11-04', false);
    PERFORM pria_test.promote(a);
    PERFORM pria_test.promote(b);
    PERFORM pria_test.rollback();
    PERFORM pria_test.promote(c);
    PERFORM pria_test.backdate_supersession(a, interval '10 days');
    PERFORM pria.archive_superseded(interval '7 days', 'pgtap');
    PERFORM pria_test.rollback(b);
    RETURN NEXT set_eq('SELECT adapter_id, status FROM pria.registry_replay',
                       'SELECT adapter_id, status FROM pria.model_registry',
                       'the replayed statuses equal the table');
END
$body$;

CREATE FUNCTION pria_test.test_record_rotation_appends_an_event() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    a uuid := pria_test.candidate('2026-11-01');
    t pria.transition;
BEGIN
    t := pria_test.promote(a);
    PERFORM pria.record_rotation(t.event_id, false, '{"error": "HTTP 500"}', 'pgtap');
    RETURN NEXT results_eq(
        $$ SELECT adapter_id, detail ->> 'ok', (detail ->> 'for_event')::bigint
             FROM pria.registry_event WHERE action = 'rotation' $$,
        format('VALUES (%L::uuid, %L, %s::bigint)', a, 'false', t.event_id),
        'the rotation outcome is recorded against the prod-change event');
    RETURN NEXT is(pria_test.status(a), 'prod', 'and changes no status');
END
$body$;

CREATE FUNCTION pria_test.test_lock_registry_holds_a_transaction_lock() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
BEGIN
    PERFORM pria.lock_registry();
    RETURN NEXT is(
        (SELECT count(*) FROM pg_locks
          WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted),
        1::bigint, 'the registry lock is held by this transaction');
END
$body$;

CREATE FUNCTION pria_test.test_registry_history_lists_events_newest_first() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    a uuid := pria_test.candidate('2026-11-07');
BEGIN
    PERFORM pria_test.promote(a);
    RETURN NEXT results_eq(
        'SELECT action, dataset_date FROM pria.registry_history',
        $$ VALUES ('promote'::text, '2026-11-07'::date), ('gate', '2026-11-07'),
                  ('register', '2026-11-07') $$,
        'history shows every event with the dataset date, newest first');
END
$body$;

-- 0005: the one rule for a promote / rollback target.
CREATE FUNCTION pria_test.test_target_row_is_one_rule_for_promote_and_rollback()
RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    gated     uuid := pria_test.candidate('2026-11-08');
    ungated   uuid := pria_test.candidate('2026-11-08', NULL);
    failed    uuid := pria_test.candidate('2026-11-08', false);
    never     uuid := pria_test.candidate('2026-11-09');
    unknown   uuid := gen_random_uuid();
BEGIN
    RETURN NEXT is((pria._target_row(gated, 'promote', false)).adapter_id, gated,
                   'a gated candidate is a promote target, returned as its row');
    RETURN NEXT throws_ok(format('SELECT pria._target_row(%L, ''promote'', false)', unknown),
                          'PR002', format('no adapter %s in model_registry', unknown),
                          'an unknown target is refused, naming it');
    RETURN NEXT throws_ok(format('SELECT pria._target_row(%L, ''rollback'', false)', unknown),
                          'PR002', format('no adapter %s in model_registry', unknown),
                          'with the same refusal for rollback');
    RETURN NEXT throws_ok(format('SELECT pria._target_row(%L, ''promote'', false)', ungated),
                          'PR006', NULL, 'promote needs a gate decision');
    RETURN NEXT throws_ok(format('SELECT pria._target_row(%L, ''promote'', false)', failed),
                          'PR006', NULL, 'and a passing one');
    RETURN NEXT is((pria._target_row(failed, 'promote', true)).gate_passed, false,
                   'forced, a failed candidate is a promote target');
    RETURN NEXT throws_ok(format('SELECT pria._target_row(%L, ''rollback'', false)', never),
                          'PR008', NULL, 'rollback only returns to a former prod');
    PERFORM pria_test.promote(gated);
    RETURN NEXT is((pria._target_row(gated, 'rollback', false)).status, 'prod',
                   'the current prod is returned unchecked: the caller reports a no-op');
    RETURN NEXT is((pria_test.promote(gated)).changed, false, 'so promote is a no-op');
    RETURN NEXT is((pria_test.rollback(gated)).changed, false, 'and so is rollback');
    RETURN NEXT throws_ok(format('SELECT pria._target_row(%L, ''archive'', false)', gated),
                          'P0001', NULL, 'an action other than promote / rollback is a bug');
END
$body$;

CREATE FUNCTION pria_test.test_target_row_refuses_archived_only_for_promote() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    a uuid := pria_test.candidate('2026-11-10');
    b uuid := pria_test.candidate('2026-11-11');
BEGIN
    PERFORM pria_test.promote(a);
    PERFORM pria_test.promote(b);
    PERFORM pria_test.backdate_supersession(a, interval '8 days');
    PERFORM pria.archive_superseded(interval '7 days', 'pgtap');
    RETURN NEXT throws_like(format('SELECT pria._target_row(%L, ''promote'', true)', a),
                            '%archived adapters are never promoted',
                            'an archived adapter is never promoted, even forced');
    RETURN NEXT is((pria._target_row(a, 'rollback', false)).status, 'archived',
                   'but an archived former prod is a rollback target');
END
$body$;

CREATE FUNCTION pria_test.test_events_carry_the_request_id_of_their_call() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    request uuid := gen_random_uuid();
    a uuid := pria_test.candidate('2026-11-12');
BEGIN
    RETURN NEXT is((SELECT count(*) FROM pria.registry_event WHERE request_id IS NOT NULL),
                   0::bigint, 'without pria.request_id, events carry none');
    PERFORM set_config('pria.request_id', request::text, true);
    PERFORM pria_test.promote(a);
    RETURN NEXT results_eq(
        format('SELECT action, adapter_id FROM pria.request_events(%L)', request),
        format('VALUES (''promote''::text, %L::uuid)', a),
        'request_events returns what the call wrote');
    RETURN NEXT is_empty(format('SELECT * FROM pria.request_events(%L)', gen_random_uuid()),
                         'and nothing for a request that committed nothing');
END
$body$;

-- Issue 22, point 1: rollback walks back the prod history.

CREATE FUNCTION pria_test.test_double_rollback_walks_back_two_promotions() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    a uuid := pria_test.candidate('2026-11-01');
    b uuid := pria_test.candidate('2026-11-02');
    c uuid := pria_test.candidate('2026-11-03');
    d uuid := pria_test.candidate('2026-11-04');
BEGIN
    PERFORM pria_test.promote(a);
    PERFORM pria_test.promote(b);
    PERFORM pria_test.promote(c);
    PERFORM pria_test.promote(d);
    RETURN NEXT is(pria.prod_stack(), ARRAY[a, b, c, d], 'the stack is the promotions in order');
    RETURN NEXT is((pria_test.rollback()).adapter_id, c, 'first rollback: d -> c');
    RETURN NEXT is((pria_test.rollback()).adapter_id, b, 'second rollback: c -> b, not back to d');
    RETURN NEXT is((pria_test.rollback()).adapter_id, a, 'third rollback: b -> a');
    RETURN NEXT throws_ok('SELECT pria_test.rollback()', 'PR007', NULL,
                          'a is the first prod: nothing further back');
    RETURN NEXT is((pria_test.rollback(d)).adapter_id, d, '--to reaches the one rolled back from');
    RETURN NEXT is(pria.prod_stack(), ARRAY[a, d], '--to an adapter off the stack pushes it');
    RETURN NEXT is((pria_test.rollback()).adapter_id, a, 'and the next rollback returns to a');
    PERFORM pria_test.promote(b);
    RETURN NEXT is((pria_test.rollback()).adapter_id, a, 'a new promotion pushes again');
    RETURN NEXT is(pria_test.prod_count(), 1::bigint, 'exactly one prod throughout');
    RETURN NEXT set_eq('SELECT adapter_id, status FROM pria.registry_replay',
                       'SELECT adapter_id, status FROM pria.model_registry',
                       'the log still replays to the table');
END
$body$;

CREATE FUNCTION pria_test.test_rollback_after_eight_stable_days() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    a uuid := pria_test.candidate('2026-11-01');
    b uuid := pria_test.candidate('2026-11-02');
    t pria.transition;
BEGIN
    PERFORM pria_test.promote(a);
    PERFORM pria_test.promote(b);
    PERFORM pria_test.backdate_supersession(a, interval '8 days');
    RETURN NEXT results_eq($$ SELECT pria.archive_superseded(interval '7 days', 'pgtap') $$,
                           format('VALUES (%L::uuid)', a), 'a is archived after 7 days');
    RETURN NEXT results_eq('SELECT target, archived FROM pria.rollback_target(NULL)',
                           format('VALUES (%L::uuid, true)', a),
                           'the archived former prod is still the rollback target');
    RETURN NEXT matches((SELECT why FROM pria.rollback_target(NULL)),
                        'was prod before the current prod .* still restorable',
                        'and the reason says why and that it is archived');
    t := pria_test.rollback();
    RETURN NEXT is(t.adapter_id, a, 'rollback brings the archived adapter back');
    RETURN NEXT is(pria_test.status(a), 'prod', 'it is prod again');
    RETURN NEXT is(pria_test.status(b), 'candidate', 'b is superseded');
END
$body$;

CREATE FUNCTION pria_test.test_rollback_to_an_archived_adapter() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    a uuid := pria_test.candidate('2026-11-01');
    b uuid := pria_test.candidate('2026-11-02');
    c uuid := pria_test.candidate('2026-11-03');
BEGIN
    PERFORM pria_test.promote(a);
    PERFORM pria_test.promote(b);
    PERFORM pria_test.promote(c);
    PERFORM pria_test.backdate_supersession(a, interval '20 days');
    PERFORM pria_test.backdate_supersession(b, interval '10 days');
    PERFORM pria.archive_superseded(interval '7 days', 'pgtap');
    RETURN NEXT is(pria_test.status(a), 'archived', 'a is archived');
    RETURN NEXT is((pria_test.rollback(a)).adapter_id, a, 'rollback --to an archived adapter');
    RETURN NEXT is(pria.prod_stack(), ARRAY[a], '--to pops the stack back to it');
    RETURN NEXT throws_ok(format('SELECT pria.promote(%L, NULL, true, ''x'', ''p'')', b),
                          'PR004', NULL, 'promote still refuses an archived adapter');
    RETURN NEXT set_eq('SELECT adapter_id, status FROM pria.registry_replay',
                       'SELECT adapter_id, status FROM pria.model_registry',
                       'the log replays to the table');
END
$body$;

CREATE FUNCTION pria_test.test_two_concurrent_rollbacks_step_back_once() RETURNS SETOF text
LANGUAGE plpgsql AS $body$
DECLARE
    a uuid := pria_test.candidate('2026-11-01');
    b uuid := pria_test.candidate('2026-11-02');
    c uuid := pria_test.candidate('2026-11-03');
    t pria.transition;
BEGIN
    PERFORM pria_test.promote(a);
    PERFORM pria_test.promote(b);
    PERFORM pria_test.promote(c);
    -- Both callers looked at prod c; the registry lock runs them one after the other.
    t := pria.rollback(NULL, 'first', 'oncall-1', NULL, c);
    RETURN NEXT is(t.adapter_id, b, 'the first rollback steps back to b');
    t := pria.rollback(NULL, 'second', 'oncall-2', NULL, c);
    RETURN NEXT ok(NOT t.changed, 'the second, which also meant to leave c, changes nothing');
    RETURN NEXT matches(t.message, 'prod is already .* not ', 'and says prod already moved');
    RETURN NEXT is(pria_test.status(b), 'prod', 'b is prod, not a');
    RETURN NEXT is((SELECT count(*) FROM pria.registry_event WHERE action = 'rollback'),
                   1::bigint, 'one rollback event');
END
$body$;
