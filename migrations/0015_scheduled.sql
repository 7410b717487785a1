-- Delayed commands (docs/guarantees.md, "Delayed commands"): a command submitted with a `run_at`
-- in the future is recorded at once as `scheduled` and waits here, not in the broker and not in
-- a handler. The api's sweep moves every due row to `new` and publishes it, a batch at a time
-- (crates/cmdbus-store/src/delayed.rs); until then it can be cancelled or re-timed.
alter table commands add column run_at timestamptz;

alter table commands drop constraint commands_status_check;
alter table commands
    add constraint commands_status_check
        check (status in ('scheduled', 'new', 'queue', 'running', 'success', 'fail', 'cancelled')),
    -- A scheduled command always says when it is due.
    add constraint commands_scheduled_run_at_check
        check (status <> 'scheduled' or run_at is not null);

-- The sweep's look at due rows: only waiting rows are in it, oldest due first.
create index commands_due on commands (run_at) where status = 'scheduled';

-- A scheduled command is unfinished work the tenant asked for: the quota counts it like a
-- `new` one (crates/cmdbus-store/src/keys.rs). Same name, so the quota's plan is unchanged.
drop index commands_unfinished_per_subject;
create index commands_unfinished_per_subject on commands (tenant, subject)
    where status in ('scheduled', 'new', 'queue', 'running');
