//! Pushes over WebSocket against the real app. `protocol`: live changes, resume and errors;
//! `fanout`: what pushes cost and who they reach; `guarantees`: the push promises, each broken
//! for real.

#[path = "../common/mod.rs"]
mod common;

mod fanout;
mod guarantees;
mod protocol;
