-- A keyed command that is not its key's turn waits here, not in the broker (docs/guarantees.md,
-- "Order by key"): `held_since` is set when its message was consumed (or never published) while
-- an earlier command of its key was unfinished or another ran; the finish that makes it the
-- key's turn publishes it again (crates/cmdbus-store/src/turns.rs), and the api's sweep does so
-- for any the finish missed. A held row owes no redelivery: its `redeliver_at` is null.
alter table commands add column held_since timestamptz;

-- The sweep's look at held rows: which keys hold any (a few entries per key are read, never
-- every row of a long backlog's IN_TURN).
create index commands_held on commands (tenant, ordering_key)
    where held_since is not null and status in ('new', 'queue');
