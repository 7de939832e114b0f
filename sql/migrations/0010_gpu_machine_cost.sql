-- What a night's training really costs (spec section 8): the GPU machine bills from boot to
-- exit - boot, weight download, training, evaluation, everything - not just the trainer's wall
-- time. `pria-ml nightly` on a GPU machine (PRIA_GPU_MACHINE) records its machine here when the
-- run starts and again when it ends; seconds x GPUs x the tier's $/GPU-hour is the cost.
-- spend_by_night, the budget guard's spent-so-far and gpu_train_cost_usd_total read it.

CREATE TABLE pria.gpu_machine_run (
    machine_id       text        PRIMARY KEY CHECK (btrim(machine_id) <> ''),
    dataset_date     date        NOT NULL,
    booted_at        timestamptz NOT NULL,
    exited_at        timestamptz NOT NULL CHECK (exited_at >= booted_at),
    gpu_type         text        NOT NULL,
    gpus             integer     NOT NULL CHECK (gpus >= 1),
    usd_per_gpu_hour numeric     NOT NULL CHECK (usd_per_gpu_hour >= 0),
    usd              numeric     GENERATED ALWAYS AS (
        extract(epoch FROM exited_at - booted_at) / 3600 * gpus * usd_per_gpu_hour) STORED,
    actor            text        NOT NULL,
    recorded_at      timestamptz NOT NULL
);
CREATE INDEX gpu_machine_run_date ON pria.gpu_machine_run (dataset_date);

COMMENT ON TABLE pria.gpu_machine_run IS
    'One row per GPU machine that ran a night: boot to exit, GPUs and rate; usd is its cost.';

-- Record (or extend) one machine's run: a later call only moves exited_at forward, so a run
-- killed after its first call still bills from boot to that call.
CREATE FUNCTION pria.record_machine_run(
    p_machine_id text,
    p_dataset_date date,
    p_booted_at timestamptz,
    p_exited_at timestamptz,
    p_gpu_type text,
    p_gpus integer,
    p_usd_per_gpu_hour numeric,
    p_actor text,
    p_at timestamptz DEFAULT NULL
) RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
    v_usd numeric;
BEGIN
    IF p_exited_at < p_booted_at THEN
        RAISE EXCEPTION 'machine % exited (%) before it booted (%)', p_machine_id, p_exited_at,
            p_booted_at
            USING ERRCODE = 'PR001';
    END IF;
    INSERT INTO pria.gpu_machine_run AS m (machine_id, dataset_date, booted_at, exited_at,
                                           gpu_type, gpus, usd_per_gpu_hour, actor, recorded_at)
    VALUES (p_machine_id, p_dataset_date, p_booted_at, p_exited_at, p_gpu_type, p_gpus,
            p_usd_per_gpu_hour, p_actor, coalesce(p_at, now()))
    ON CONFLICT (machine_id) DO UPDATE
       SET exited_at = greatest(m.exited_at, excluded.exited_at),
           recorded_at = excluded.recorded_at
    RETURNING usd INTO v_usd;
    RETURN v_usd;
END
$$;
