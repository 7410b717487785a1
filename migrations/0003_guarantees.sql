-- Guarantees that hold under faults.
--
-- claim:        the token of the current run. Every write of a run (heartbeat, progress, finish,
--               the handler's own fenced effects) names it, so a run that lost its lease, or an
--               older generation's run, can never change the command again.
-- lease_losses: runs that lost their lease (worker died, paused, or cut off from the database).
--               They do not use up max_attempts, but only a few are allowed: past the limit the
--               command fails with `lease_lost` instead of cycling forever.
-- releases:     runs given back unfinished at shutdown; they do not use up max_attempts either.
-- redeliver_at: when the api's sweep publishes this row's message again unless a worker claimed
--               it by then: a `queue` row whose message was lost (a delay tier dead-letters at
--               most once), or a `fail` row whose parking publish is still owed.
-- changed_xid:  the transaction that made the last visible change. The notifier reads changes by
--               transaction snapshot, so a resume point can never skip a change whose version
--               committed late.
alter table commands
    add column claim uuid,
    add column lease_losses integer not null default 0,
    add column releases integer not null default 0,
    add column redeliver_at timestamptz,
    add column changed_xid xid8 not null default pg_current_xact_id();

update commands set claim = gen_random_uuid() where status = 'running';
update commands set redeliver_at = now() where status = 'queue';

alter table commands
    -- A running command always names its run.
    add constraint commands_running_claim_check check (status <> 'running' or claim is not null),
    -- Lost and released runs are counted, never negative.
    add constraint commands_lost_runs_check check (lease_losses >= 0 and releases >= 0);

-- Resume by snapshot replaces resume by version. One index serves the notifier's tail (every
-- change after a snapshot, across tenants) and a client's resume (its tenant's changes after its
-- cursor: other tenants' entries are skipped inside the index, without reading their rows).
drop index commands_tenant_version;
create index commands_changed on commands (changed_xid, tenant);
-- The redelivery sweep; every `queue` row has a `redeliver_at`, so this also counts them.
create index commands_redeliver on commands (redeliver_at)
    where status in ('queue', 'fail') and redeliver_at is not null;
-- Order by key: is an earlier command of this key still unfinished?
create index commands_ordering on commands (tenant, ordering_key, created_at, id)
    where ordering_key is not null and status in ('new', 'queue', 'running');
