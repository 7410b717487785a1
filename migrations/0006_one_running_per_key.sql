-- A key never has two commands running (docs/guarantees.md). The claim's ordering predicate
-- (`IN_TURN`) reads the key in the claim's own snapshot, so two claims of one key under way at
-- once (a lane re-run and a later command, say) could each see the other not running. With this
-- index the second waits for the first to commit and then fails on it; the claim asks again, and
-- its predicate then sees the run (crates/cmdbus-store/src/claim.rs).
create unique index commands_one_running_per_key on commands (tenant, ordering_key)
    where status = 'running' and ordering_key is not null;
