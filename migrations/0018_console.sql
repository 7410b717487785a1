-- What the operator's console reads: a terminal state for parked failures an operator drops,
-- an index of failures, counts per status kept as the table changes, and a rollup of runs per
-- minute. Nothing here adds a write per command to the hot path: the counters and the rollup
-- are appended to once per statement (statement triggers over transition tables), never locked
-- by two writers at once, and folded by the api's sweep.

-- `discarded`: a parked failure (`fail` with a lane) an operator decided not to re-run. Its
-- parked message claims nothing when a lane consumes it, and it is never replayed. Added to the
-- states (and `discard` to the audit trail's actions) as the constraints stand when this runs,
-- so that a state or an action another migration added is kept.
do $$
declare
    target record;
    allowed text;
begin
    for target in
        select * from (values ('commands', 'commands_status_check', 'status', 'discarded'),
                              ('audit', 'audit_action', 'action', 'discard'))
                   as t(tab, name, col, added)
    loop
        select string_agg(distinct quote_literal(m[1]), ', ') into allowed
          from pg_constraint c,
               regexp_matches(pg_get_constraintdef(c.oid), '''([a-z_]+)''', 'g') as m
         where c.conname = target.name and c.conrelid = target.tab::regclass;
        execute format('alter table %I drop constraint %I, add constraint %I check (%I in (%s, %L))',
                       target.tab, target.name, target.name, target.col, allowed, target.added);
    end loop;
end $$;

alter table commands drop constraint commands_finished_check;
alter table commands add constraint commands_finished_check
    check ((status in ('success', 'fail', 'cancelled', 'discarded')) = (finished_at is not null));

-- Failures, newest first: the console's failed and parked views, their counts, bulk retry and
-- discard read this instead of a window of the newest commands. Only failed rows have an entry,
-- so the hot path writes it only when a command fails.
create index commands_failed on commands (tenant, id desc) where status = 'fail';

-- Commands per tenant, type and status. Each statement that changes `commands` appends one row
-- per (tenant, type, status) it changed, with the difference (`count` may be negative); the sum
-- of a key's rows is its count. Appends never wait for each other, unlike an update of one
-- counter row per key would; the api's sweep folds each key's rows into one
-- (crates/cmdbus-store/src/rollup.rs), so the table stays about one row per key.
create table command_counts (
    tenant text not null,
    type   text not null,
    status text not null,
    count  bigint not null
);
create index command_counts_key on command_counts (tenant, type, status);

create function command_counts_inserted() returns trigger language plpgsql as $$
begin
    insert into command_counts (tenant, type, status, count)
    select tenant, type, status, count(*) from inserted group by 1, 2, 3;
    return null;
end $$;

create function command_counts_updated() returns trigger language plpgsql as $$
begin
    insert into command_counts (tenant, type, status, count)
    select tenant, type, status, sum(change)
      from (select o.tenant, o.type, o.status, -1 as change
              from before_rows o join after_rows n on n.id = o.id
             where n.status <> o.status
            union all
            select n.tenant, n.type, n.status, 1
              from before_rows o join after_rows n on n.id = o.id
             where n.status <> o.status) changed
     group by 1, 2, 3;
    return null;
end $$;

create function command_counts_deleted() returns trigger language plpgsql as $$
begin
    insert into command_counts (tenant, type, status, count)
    select tenant, type, status, -count(*) from deleted group by 1, 2, 3;
    return null;
end $$;

create trigger commands_counted_insert after insert on commands
    referencing new table as inserted
    for each statement execute function command_counts_inserted();
create trigger commands_counted_update after update on commands
    referencing old table as before_rows new table as after_rows
    for each statement execute function command_counts_updated();
create trigger commands_counted_delete after delete on commands
    referencing old table as deleted
    for each statement execute function command_counts_deleted();

-- The counts of the commands already there, taken while nothing can change them.
lock table commands in share mode;
insert into command_counts (tenant, type, status, count)
select tenant, type, status, count(*) from commands group by 1, 2, 3;

-- Runs per tenant, type, minute and outcome (`success`, `fail`, `retry`, `cancelled`,
-- `lease_lost`, `released`), each with how long it took, in a fixed histogram: `bucket` is the
-- index of the run's milliseconds among `command_stats_bounds()` (0: under the first bound).
-- Appended once per statement that ends attempts (the worker's finish batch, the reaper), and
-- folded by the api's sweep like the counts; `GET /v1/stats` sums it per minute or hour.
create table command_stats (
    tenant  text not null,
    type    text not null,
    minute  timestamptz not null,
    outcome text not null,
    bucket  smallint not null,
    count   bigint not null
);
create index command_stats_key on command_stats (tenant, minute, type, outcome, bucket);

-- The histogram's bounds, in milliseconds, in one place: `GET /v1/stats` reads them from here.
create function command_stats_bounds() returns float8[] language sql immutable as $$
    select array[1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700,
                 1000, 1500, 2000, 3000, 5000, 7000, 10000, 15000, 20000, 30000, 60000,
                 120000, 300000, 600000]::float8[]
$$;

create function command_stats_ended() returns trigger language plpgsql as $$
begin
    insert into command_stats (tenant, type, minute, outcome, bucket, count)
    select c.tenant, c.type, date_trunc('minute', n.finished_at), n.outcome,
           width_bucket(extract(epoch from n.finished_at - n.started_at)::float8 * 1000,
                        command_stats_bounds()),
           count(*)
      from after_rows n
      join before_rows o
        on o.command_id = n.command_id and o.generation = n.generation
       and o.attempt = n.attempt
      join commands c on c.id = n.command_id
     where o.outcome is null and n.outcome is not null and n.finished_at is not null
     group by 1, 2, 3, 4, 5;
    return null;
end $$;

create trigger command_attempts_ended after update on command_attempts
    referencing old table as before_rows new table as after_rows
    for each statement execute function command_stats_ended();
