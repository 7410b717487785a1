-- The operators' audit trail: one row per bulk action (cancel, retry) and per pause or resume,
-- written by the api in the same request, read newest first at `GET /v1/audit`.
create table audit (
    -- Newest is highest: the page cursor.
    id     bigint generated always as identity primary key,
    -- When it was done.
    at     timestamptz not null default now(),
    -- Whose commands it acted on (the caller's tenant; for a pause, the admin's).
    tenant text not null,
    -- Who did it: `key:<id>`, `token:<subject>` or `open`.
    actor  text not null,
    -- What was done.
    action text not null
        constraint audit_action check (action in ('cancel', 'retry', 'pause', 'resume')),
    -- The selection or filter the action was given (a pause: the type).
    filter jsonb not null,
    -- How many commands it changed (1 for a pause or resume that changed the type).
    count  bigint not null constraint audit_count_not_negative check (count >= 0)
);
create index audit_newest_per_tenant on audit (tenant, id desc);
