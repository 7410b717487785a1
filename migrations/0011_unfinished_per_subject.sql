-- A browser token's share of its tenant's quota counts the unfinished commands of its subject
-- (crates/cmdbus-api/src/quota.rs, crates/cmdbus-store/src/keys.rs). One index serves both
-- counts: by tenant (its first column) and by tenant and subject; it replaces 0007's index on
-- the tenant alone, so that the write path keeps one index of unfinished commands, not two.
create index commands_unfinished_per_subject on commands (tenant, subject)
    where status in ('new', 'queue', 'running');
drop index commands_unfinished_per_tenant;
