-- An idempotency key belongs to whoever submitted under it: the tenant's backend (its API keys,
-- scope '') or one end user (a browser token with `submit`, scope = the token's subject). Before,
-- one key space per tenant let an end user claim a key the backend would use later, whose
-- submit then answered with the end user's command (or `422`). A subject is never empty, so ''
-- is the backend's alone. Keys recorded before this migration stay in the backend's scope.
alter table commands add column idempotency_scope text not null default '';

create unique index commands_idempotency_key_scoped
    on commands (tenant, idempotency_scope, idempotency_key)
    where idempotency_key is not null;
drop index commands_idempotency_key;
alter index commands_idempotency_key_scoped rename to commands_idempotency_key;
