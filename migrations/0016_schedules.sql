-- Recurring commands: a schedule submits one command of its type and payload at each tick of its
-- cron pattern, read in its time zone. The api's schedule sweep takes the due rows `for update
-- skip locked`, submits each tick's command (idempotency key `schedule:<id>:<tick>`) and moves
-- `next_run_at` on in the same transaction, so a tick submits exactly once however many api
-- processes sweep.
create table schedules (
    id           uuid primary key,
    -- Whose commands it submits.
    tenant       text not null,
    -- The operator's name for it, unique per tenant; a startup file declares schedules by name.
    name         text,
    -- The command type and payload each tick submits.
    type         text not null,
    payload      jsonb not null,
    -- The cron pattern (5 fields, or 6 with seconds first) and the IANA time zone it is read in.
    cron         text not null,
    timezone     text not null,
    -- What a sweep does with ticks it finds long past (after an outage): `skip` them, or submit
    -- one command for all of them (`catch_up_once`).
    missed       text not null default 'skip'
        constraint schedules_missed check (missed in ('skip', 'catch_up_once')),
    -- The next tick to submit; ticks before it are done (submitted or skipped).
    next_run_at  timestamptz not null,
    -- Set while paused: the sweep passes it by, and a resume starts from the next future tick.
    paused_at    timestamptz,
    -- The last tick a command was submitted for, and that command.
    last_tick_at timestamptz,
    last_command uuid,
    -- Declared by the startup file (`CMDBUS_SCHEDULES`) rather than through the api.
    declared     boolean not null default false,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    constraint schedules_name_per_tenant unique (tenant, name)
);
-- What the sweep reads: due, unpaused schedules, oldest tick first.
create index schedules_due on schedules (next_run_at) where paused_at is null;

-- Schedule changes are operators' actions too: they join the audit trail.
alter table audit drop constraint audit_action;
alter table audit add constraint audit_action check (action in (
    'cancel', 'retry', 'pause', 'resume',
    'schedule_create', 'schedule_pause', 'schedule_resume', 'schedule_delete'));
