-- A paused type: every worker process stops consuming its queues (main, partitions and lanes)
-- within about a second, reading this table with its heartbeat; its messages stay in the
-- queues and its running commands finish. A row here, not a flag on `command_types`, because a
-- worker's registration upserts that row and must never undo an operator's pause.
create table paused_types (
    -- The type, as registered.
    name      text primary key references command_types (name) on delete cascade,
    -- When it was paused.
    paused_at timestamptz not null default now(),
    -- Who paused it (`key:<id>`, `token:<subject>`, `open`).
    paused_by text not null
);
