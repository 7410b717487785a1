-- The status database: the single source of truth of every command.

-- One global sequence orders every change ever made: a client keeps a change only if its
-- version is higher than the one it holds.
create sequence command_version;

create table command_types (
    name          text primary key,
    description   text not null default '',
    max_attempts  integer not null default 1,
    example       jsonb,
    payload_schema jsonb,
    updated_at    timestamptz not null default now(),
    constraint command_types_max_attempts_check check (max_attempts between 1 and 100)
);

create table commands (
    id               uuid primary key,
    tenant           text not null,
    type             text not null,
    payload          jsonb not null,
    status           text not null default 'new',
    priority         smallint not null default 0,
    ordering_key     text,
    idempotency_key  text,
    generation       integer not null default 0,
    attempt          integer not null default 0,
    max_attempts     integer not null default 1,
    progress         real,
    progress_note    text,
    result           jsonb,
    error            jsonb,
    lane             text,
    worker           text,
    lease_until      timestamptz,
    cancel_requested boolean not null default false,
    version          bigint not null default nextval('command_version'),
    created_at       timestamptz not null default now(),
    queued_at        timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    constraint commands_status_check
        check (status in ('new', 'queue', 'running', 'success', 'fail', 'cancelled')),
    constraint commands_priority_check check (priority between 0 and 9),
    constraint commands_attempt_check check (attempt >= 0 and max_attempts between 1 and 100),
    constraint commands_progress_check check (progress is null or progress between 0 and 1),
    -- A lease is the only right to finish: a running command always names its holder.
    constraint commands_running_lease_check
        check (status <> 'running' or (worker is not null and lease_until is not null)),
    constraint commands_finished_check
        check ((status in ('success', 'fail', 'cancelled')) = (finished_at is not null)),
    constraint commands_idempotency_key unique (tenant, idempotency_key)
);

-- Resume: "everything of this tenant changed after version N".
create index commands_tenant_version on commands (tenant, version);
-- Listing newest first (ids are UUID v7, so they sort by creation time).
create index commands_tenant_id on commands (tenant, id desc);
-- The outbox relay sweeps rows the broker never confirmed.
create index commands_relay on commands (created_at) where status = 'new';
-- The lease reaper sweeps running rows.
create index commands_reaper on commands (lease_until) where status = 'running';

-- One row per attempt: who ran it, when, and how it ended. What an operator reads to debug.
create table command_attempts (
    command_id  uuid not null references commands (id) on delete cascade,
    generation  integer not null,
    attempt     integer not null,
    worker      text not null,
    started_at  timestamptz not null default now(),
    finished_at timestamptz,
    outcome     text,
    error       jsonb,
    primary key (command_id, generation, attempt),
    constraint command_attempts_outcome_check
        check (outcome is null or outcome in ('success', 'fail', 'retry', 'cancelled', 'released', 'lease_lost'))
);
