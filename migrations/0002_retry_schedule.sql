-- When a command that failed with a retryable error runs again (shown while it waits in `queue`).
alter table commands add column next_attempt_at timestamptz;
