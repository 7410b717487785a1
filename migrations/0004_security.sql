-- Tenants own their commands; API keys say who a caller is and what it may do.

-- A key is a long random secret; only its SHA-256 is stored, so a leaked table leaks no key.
create table api_keys (
    id          uuid primary key,
    tenant      text not null,
    name        text not null,
    scopes      text[] not null,
    -- SHA-256 of the whole key string.
    secret_hash bytea not null,
    -- The key's first characters, so that a listing can say which key is which.
    prefix      text not null,
    -- Created by a development start on loopback; replaced at the next one.
    development boolean not null default false,
    created_at  timestamptz not null default now(),
    revoked_at  timestamptz,
    constraint api_keys_secret_hash unique (secret_hash),
    constraint api_keys_scopes_check check (
        cardinality(scopes) > 0
        and scopes <@ array['submit', 'read', 'operate', 'admin']::text[]),
    constraint api_keys_tenant_check check (tenant ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    constraint api_keys_name_check check (length(name) between 1 and 200)
);

create index api_keys_tenant on api_keys (tenant, created_at);

-- The secret that signs browser tokens when none is configured: one per database, so that every
-- process of a deployment verifies what any of them minted.
create table token_secrets (
    id         smallint primary key,
    secret     bytea not null,
    created_at timestamptz not null default now(),
    constraint token_secrets_single check (id = 1),
    constraint token_secrets_length check (length(secret) >= 32)
);

-- The end user a command belongs to: a browser token for that subject sees only its commands.
alter table commands add column subject text;

-- A subject's commands, newest first: what a browser token lists. (Status and type filters
-- look through a bounded window of the newest commands instead: an index on either would cost
-- every state change of every command another write.)
create index commands_tenant_subject on commands (tenant, subject, id desc)
    where subject is not null;
