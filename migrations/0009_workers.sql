-- One row per worker process, written about every second from the worker's machinery (never
-- from a handler's thread): the console lists workers from it, and the api's sweep releases the
-- runs of a worker that has not been seen for `dead_after_ms` (its own setting), so that a killed
-- or paused process's commands run again within seconds, not at the end of their lease.
create table workers (
    -- The lease holder's name: `commands.worker` and `command_attempts.worker` hold it.
    id            text primary key,
    host          text not null,
    pid           integer not null,
    -- The cmdbus version it runs.
    version       text not null,
    -- The exception lane it serves; null for the main queues.
    lane          text,
    concurrency   integer not null,
    -- Silence after which its runs are released (the worker stops its own handlers first).
    dead_after_ms integer not null,
    started_at    timestamptz not null default now(),
    last_seen_at  timestamptz not null default now(),
    -- It is draining: it takes no new work and deletes its row once done.
    stopping      boolean not null default false,
    constraint workers_dead_after_check check (dead_after_ms > 0)
);
create index workers_last_seen on workers (last_seen_at);

-- When a run of the command was last taken back from a worker that stopped renewing it (its
-- lease expired, or its process stopped heartbeating): the view shows it.
alter table commands add column reclaimed_at timestamptz;
