//! The REST contract against the real app, PostgreSQL and RabbitMQ: submit, read, list, long-poll,
//! idempotency, operator actions, and a clear error (with nothing written) for each bad input.
//! `submit`: submitting, reading and long-polling one command; `lists`: lists, replay, cancel,
//! types and metrics.

#[path = "../common/mod.rs"]
mod common;

mod lists;
mod submit;

use cmdbus::Role;
use common::{Env, TestApp, id_of};
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
