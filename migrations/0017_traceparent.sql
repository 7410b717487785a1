-- The W3C trace context a command was submitted in (the api's span that recorded it), written
-- as a version 00 `traceparent`: the worker's and the notifier's spans of the command join its
-- trace, and its log lines carry its trace id. Null for commands recorded before this.
alter table commands add column traceparent text;
-- NOT VALID: every row that exists already is null, so there is nothing to check, and the
-- table is not scanned under the lock the new column holds; new rows are checked.
alter table commands
    add constraint commands_traceparent_check
        check (traceparent ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$') not valid;
