-- The console's counters (0018) without joining the transition tables. A statement changes the
-- counts of (tenant, type, status) by the rows after it less the rows before it: a row whose
-- status did not change adds one and takes one away. The same holds for the run statistics: an
-- attempt row counts once it has an outcome, so the statement's contribution is its ended rows
-- after less its ended rows before (an attempt that was ended already cancels out, as the join
-- left it out). The joins this replaces matched the old and new rows by key, and on the
-- connections that run the group-committed statements (which plan without hash or merge joins,
-- `for_batches` in crates/cmdbus-store/src/lib.rs) each was a nested loop: n² comparisons for a batch of n.

create or replace function command_counts_updated() returns trigger language plpgsql as $$
begin
    insert into command_counts (tenant, type, status, count)
    select tenant, type, status, sum(change)
      from (select tenant, type, status, -1 as change from before_rows
            union all
            select tenant, type, status, 1 from after_rows) changed
     group by 1, 2, 3
    having sum(change) <> 0;
    return null;
end $$;

create or replace function command_stats_ended() returns trigger language plpgsql as $$
begin
    insert into command_stats (tenant, type, minute, outcome, bucket, count)
    select c.tenant, c.type, date_trunc('minute', ended.finished_at), ended.outcome,
           width_bucket(extract(epoch from ended.finished_at - ended.started_at)::float8 * 1000,
                        command_stats_bounds()),
           sum(ended.change)
      from (select command_id, started_at, finished_at, outcome, -1 as change
              from before_rows
             where outcome is not null and finished_at is not null
            union all
            select command_id, started_at, finished_at, outcome, 1
              from after_rows
             where outcome is not null and finished_at is not null) ended
      join commands c on c.id = ended.command_id
     group by 1, 2, 3, 4, 5
    having sum(ended.change) <> 0;
    return null;
end $$;
