//! The rules the product promises, each spelled once and named here; the statements of the
//! other modules splice these pieces in (`format!`, never input). Every piece reads the command
//! under the alias `c`.

use uuid::Uuid;

/// What every visible change sets besides its own columns: the next version (clients keep a
/// change only if its version is higher) and the writing transaction (the notifier reads changes
/// by snapshot). Heartbeats and sweep bookkeeping change neither: no client needs to see them.
pub(crate) const CHANGED: &str =
    "version = nextval('command_version'), changed_xid = pg_current_xact_id()";

/// The ordering predicate: command `c` is in its turn when no other command of its ordering key
/// and tenant is `running`, and no earlier one (created earlier, ties broken by id) is unfinished
/// (`new`, `queue` or `running`). A key never has two commands running, whatever made a command
/// unfinished again: a replayed or lane re-run earlier command waits until a later one that is
/// running now has finished, and from then on the later commands that are still unfinished wait
/// for it, as they waited for it the first time. A claim starts only a command in its turn, and
/// the redelivery sweep publishes no copy of one that waits: order by key is a property of the
/// database, not of message position. The predicate reads the key in the statement's snapshot;
/// the unique index `commands_one_running_per_key` holds the same rule between two claims under
/// way at once (`claim.rs` asks again when it fails on it).
pub(crate) const IN_TURN: &str = "(c.ordering_key is null or not exists (
                     select 1 from commands e
                      where e.tenant = c.tenant and e.ordering_key = c.ordering_key
                        and e.id <> c.id
                        and (e.status = 'running'
                             or (e.status in ('new', 'queue')
                                 and (e.created_at, e.id) < (c.created_at, c.id)))))";

/// The moment a statement starts or ends runs, as a CTE (`clock.at`, one reading for every row):
/// the clock during the statement, not the transaction's start (`now()`). A statement can wait
/// before it takes its snapshot (for a table's lock, say); dated by `now()`, a claim that waited
/// would date its run before the finish of its key's previous run — a finish its snapshot saw
/// committed — and the recorded runs of the key would overlap though the runs did not. Read by
/// the clock, a run starts after every run its claim saw end, and ends before any claim that
/// sees it ended: the recorded runs of a key overlap only if the runs did.
pub(crate) const CLOCK: &str = "clock as materialized (select clock_timestamp() as at)";

/// The attempt budget: command `c` may start another run. Runs that lost their lease or were
/// given back at shutdown do not use up `max_attempts` (the worker's
/// `CommandRow::has_attempts_left` reads the same rule off a row).
pub(crate) const ATTEMPTS_LEFT: &str = "(c.attempt < c.max_attempts + c.lease_losses + c.releases)";

/// The `status` of command `c` as the batched statements test it, in their lock lookups and in
/// their updates alike: an expression (`c.status || ''`, the same value) that no partial index's
/// predicate can be proven from. Those statements take a batch's ids, so the primary key is the
/// way in; given the plain column, the planner may serve them from a partial index of every
/// `new`, `running` or unfinished row (`commands_relay`, `commands_unfinished_per_subject`, …)
/// and filter by id.
/// It did, on statistics that lagged a growing backlog: every claim read every unfinished row,
/// the cost per command grew with the backlog, and 2,000 submits a second fell behind
/// (`store::plans`).
pub(crate) const STATUS_BY_ID: &str = "(c.status || '')";

/// `items` by command id: every batched statement locks its rows in id order, so two batches
/// that share rows — a worker's claims and an api's `queue` update, say — wait for each other
/// instead of deadlocking (which PostgreSQL resolves only after `deadlock_timeout`, a second).
/// A sorted input is not enough where an update joins it (a hash join visits rows in the
/// table's order): those statements lock first, `select … order by id for update` (`claim`,
/// `finish`, `mark_queued`, `redelivered`, `hold`, `hold_new`).
pub(crate) fn in_lock_order<T>(items: &[T], id: impl Fn(&T) -> Uuid) -> Vec<&T> {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by_key(|item| id(item));
    sorted
}
