//! The REST contract against the real app, PostgreSQL and RabbitMQ: submit, read, list, long-poll,
//! idempotency, operator actions, and a clear error (with nothing written) for each bad input.
//! `submit`: submitting, reading and long-polling one command; `typed`: payloads checked against
//! their type's schema, and the schemas published; `lists`: lists, replay, cancel,
//! types and metrics; `ops`: pause and resume,
//! queues, bulk cancel and retry bounded by their dry run, the audit trail; `discard`: parked
//! failures dropped for good, one or in bulk; `console`: search, counts per status and run
//! statistics; `web`: the console's files revalidated by `ETag` and gzipped; `schedules`:
//! recurring commands, their ticks, pause, delete and missed ticks; `schedule_file`: schedules
//! declared by the startup file; `delayed`: commands with a `run_at` (lateness measured,
//! cancel and re-time, 10,000 due at once, an api killed while they wait); `batch`: batch
//! submit (results in order, repeats, quota and rate); `observe`: one command followed across
//! processes in JSON log lines and in the spans exported over OTLP.

#[path = "../common/mod.rs"]
mod common;

mod batch;
mod console;
mod delayed;
mod discard;
mod example;
mod lists;
mod observe;
mod ops;
mod schedule_file;
mod schedules;
mod submit;
mod typed;
mod web;

use cmdbus::Role;
use common::{Env, TestApp, id_of};
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
