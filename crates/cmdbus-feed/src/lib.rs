//! The change feed: this process's in-process fan-out of command changes, from PostgreSQL and
//! the bus's `events` fanout to every client that follows them (WebSocket connections and
//! long-polls alike), and the rule that makes a resume cursor safe.
//!
//! # Layout
//!
//! - `lib.rs` (here): this doc, the one statement of the cursor invariant, and the re-exports.
//! - `feed.rs`: `ChangeFeed`, the handle: `publish` a change, `advance` the horizon, `reset`,
//!   hand out a `subscriber`. `ChangeFeed::start` spawns the `events` listener.
//! - `events.rs`: the fast path: follows the bus's `events` fanout (`Broker::follow_fanout`) and
//!   hands every change it carries to the feed.
//! - `tail.rs`: `follow_database`, the source of truth: reads from PostgreSQL what changed since
//!   its last snapshot, publishes what the fast path missed, then advances the horizon.
//! - `hub.rs`: the routing index (which subscriber follows which command) and the sequence
//!   numbers; `inbox.rs`: one subscriber's bounded queue; `shared.rs`: the hub under its one
//!   lock and the latest `Horizon`, which the feed writes and subscribers read.
//! - `subscriber.rs`: `Subscriber`, one reader: follows ids or a tenant's `all`, pops its
//!   changes in order, each with the horizon it may hand out once the change is sent.
//! - `resume.rs`: the resume rule for one client: `parse_since`, `ChangeFeed::ready`, `Replay`
//!   (what a `since` owes) and `Position` (which cursor the client may be handed, when).
//! - `page.rs`: `changes_since`, one answer of the HTTP change feed: a page of what changed
//!   since a cursor (`cmdbus_store::changed_page`), read as a replay reads, or a reset.
//!
//! The binary (`cmdbus`) starts the feed and the tail; the notifier's WebSocket sessions follow
//! the resume rule through `resume.rs`; the api's long-poll only waits on a `Subscriber`, and
//! its change feed reads through `page.rs` after following its commands in a `Subscriber`.
//!
//! # The cursor invariant
//!
//! A cursor is a PostgreSQL snapshot (`cmdbus_store::Cursor`), and a client that holds cursor
//! C has been sent every change committed in C that matches what it follows. Every other rule
//! here serves that one:
//!
//! - The tail publishes every change committed in snapshot S into the feed before it records S
//!   as the horizon (`ChangeFeed::advance`); the fanout only makes changes arrive sooner, and a
//!   change arriving twice is published once. Horizons advance under the hub's lock, which also
//!   numbers and queues every change, so a horizon covers exactly the changes numbered up to it.
//! - A subscriber may hand out horizon H once its inbox holds nothing numbered up to H: each
//!   change H covers was then sent (or is being sent with H). It reads the horizon before the
//!   inbox, so nothing needs to visit idle subscribers when the horizon moves.
//! - A client that resumes with `since` follows its commands first and only then reads what
//!   changed after `since` in a later snapshot, so the replay and the live changes can only
//!   overlap (the duplicates are dropped by version), never leave a gap. It is answered with
//!   the latest horizon once everything queued that the horizon covers was sent.
//! - A resume that cannot be served is not answered with nothing: a `since` that does not
//!   parse is refused (`bad_cursor`); a resume that owes more than it replays, and a tail pass
//!   that reads too many changes at once, tell the client to reload (`reset`) and go on from a
//!   sound cursor; a subscriber that falls too far behind is closed, to resume with its cursor.
//!   A well-formed cursor from the future (ahead of the database: never handed out by it) is
//!   told to reload too. (One older than the retention keeps is not detected yet: the commands
//!   deleted since are simply not replayed.)

mod events;
mod feed;
mod hub;
mod inbox;
mod page;
mod resume;
mod shared;
mod subscriber;
mod tail;

pub use feed::ChangeFeed;
pub use inbox::{Change, Lagged, Routed};
pub use page::{ChangesSince, changes_since};
pub use resume::{BadSince, Position, Replay, parse_since};
pub use shared::Horizon;
pub use subscriber::{Delivery, Subscriber};
pub use tail::follow_database;
