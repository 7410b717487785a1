-- The hot path writes every index of a command on each of its state changes (none of them is a
-- HOT update: each one moves `changed_xid` and `status`). The idempotency index held an entry
-- for every command, keyed or not; only keyed commands need one.
alter table commands drop constraint commands_idempotency_key;
create unique index commands_idempotency_key on commands (tenant, idempotency_key)
    where idempotency_key is not null;
