//! Pushes over WebSocket, SSE and the HTTP change feed against the real app. `protocol`: live
//! changes, resume and errors; `changes`: the change feed `/v1/changes`; `events`: SSE `/v1/events`;
//! `fanout`: what pushes cost and who they reach; `guarantees`: the push promises, each broken
//! for real; `stop`: a graceful stop of a real process, seen by its clients.

#[path = "../common/mod.rs"]
mod common;

mod changes;
mod events;
mod fanout;
mod guarantees;
mod protocol;
mod stop;
