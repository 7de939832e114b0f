-- The slice of PRIA's product database that pria-ml extracts from (docs/data-contract.md).
-- Not a registry migration: `pria-ml seed` and the tests apply it to the SOURCE database, the
-- stand-in for the Supabase read replica. Columns the extractor requires are deliberately
-- nullable, as they are in the product: bad rows must reach extraction and be quarantined there.

CREATE TABLE IF NOT EXISTS expense (
    expense_id   uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    user_id      uuid,
    description  text,          -- Restricted: free text typed by the user
    merchant     text,          -- Restricted
    notes        text,          -- Restricted
    category_id  integer,
    amount       numeric(12, 2),
    currency     char(3),
    created_at   timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS agent_trace (
    trace_id     uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    expense_id   uuid,
    -- {"messages": [{"role": system|user|tool|assistant, "content": ...}, ...], plus session
    -- and client metadata carrying user identifier fields at any depth}
    trace        jsonb,
    created_at   timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS workflow_event (
    event_id         uuid PRIMARY KEY,
    workspace_id     uuid NOT NULL,
    trace_id         uuid,
    event_type       text,
    override_flag    boolean,
    corrected_output text,      -- what the human did instead, when override_flag
    created_at       timestamptz NOT NULL
);

-- Extraction reads each table by a retention window on created_at.
CREATE INDEX IF NOT EXISTS expense_created_at_idx ON expense (created_at);
CREATE INDEX IF NOT EXISTS agent_trace_created_at_idx ON agent_trace (created_at);
CREATE INDEX IF NOT EXISTS workflow_event_created_at_idx ON workflow_event (created_at);
