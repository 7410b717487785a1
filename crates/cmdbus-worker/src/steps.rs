//! The spans of a delivery's steps (`claim`, `handle`, `finish`): each a child of the span that
//! submitted the command (the trace context its message or row carries), so that the steps join
//! the command's trace, with the command's id, type, attempt, tenant and trace id as fields, on
//! every line logged in them. At ERROR level, so that they exist whenever anything is logged.

use cmdbus_domain::{TraceParent, trace};
use cmdbus_store::CommandRow;
use tracing::Span;
use uuid::Uuid;

/// `span`, joined to the trace of `parent` when there is one.
fn joined(span: Span, parent: Option<&TraceParent>) -> Span {
    if let Some(parent) = parent {
        trace::adopt(&span, parent);
    }
    span
}

/// The claim of command `id`: its type, attempt and tenant are recorded once the claim tells
/// them (`claimed`).
pub(crate) fn claim(id: Uuid, parent: Option<&TraceParent>) -> Span {
    let span = tracing::error_span!(
        "claim",
        command.id = %id,
        command.type = tracing::field::Empty,
        command.attempt = tracing::field::Empty,
        tenant = tracing::field::Empty,
        trace_id = parent.map(TraceParent::trace_id_hex).as_deref(),
    );
    joined(span, parent)
}

/// Records on the claim's `span` what the claim told of the command.
pub(crate) fn claimed(span: &Span, row: &CommandRow) {
    span.record("command.type", row.kind.as_str());
    span.record("command.attempt", row.attempt);
    span.record("tenant", row.tenant.as_str());
}

/// A step of the run of a claimed `row`, every field known at once.
macro_rules! run_step {
    ($name:literal, $row:expr, $parent:expr) => {{
        let (row, parent): (&CommandRow, Option<&TraceParent>) = ($row, $parent);
        let span = tracing::error_span!(
            $name,
            command.id = %row.id,
            command.type = row.kind.as_str(),
            command.attempt = row.attempt,
            tenant = row.tenant.as_str(),
            trace_id = parent.map(TraceParent::trace_id_hex).as_deref(),
        );
        joined(span, parent)
    }};
}

/// The handler's run of `row` (a handler's own lines are logged in it).
pub(crate) fn handle(row: &CommandRow, parent: Option<&TraceParent>) -> Span {
    run_step!("handle", row, parent)
}

/// The finish of `row`'s run in PostgreSQL, and the settling of its message.
pub(crate) fn finish(row: &CommandRow, parent: Option<&TraceParent>) -> Span {
    run_step!("finish", row, parent)
}
