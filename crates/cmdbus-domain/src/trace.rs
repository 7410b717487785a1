//! Trace context across processes (W3C Trace Context): the `traceparent` a command carries from
//! the submit that recorded it to every process that works on it — stored in its row, sent in
//! its message's headers and in its events — so that the api's, the worker's and the notifier's
//! spans of one command share one trace.
//!
//! The ids are carried whether or not spans are exported: they are the `trace_id` field of the
//! log lines about a command. Exporting is the binary's business (`otel` feature): it installs
//! `SpanLinks`, which joins `tracing` spans to the context; without it, joining costs a load
//! of an empty `OnceLock`.

use std::{fmt, sync::OnceLock};
use tracing::Span;
use uuid::Uuid;

/// The header that carries a `TraceParent`, on HTTP requests and AMQP messages alike.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// A `traceparent` value: the trace a span belongs to, the span itself (the parent of whatever
/// names it), and the trace flags (bit 0: sampled).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace: 16 bytes, never all zero.
    pub trace_id: [u8; 16],
    /// The span that a child names as its parent: 8 bytes, never all zero.
    pub parent_id: [u8; 8],
    /// The trace flags; bit 0 says the caller records (samples) the trace.
    pub flags: u8,
}

/// Bit 0 of the trace flags.
const SAMPLED: u8 = 0x01;

impl TraceParent {
    /// Reads a `traceparent` header by the rules of W3C Trace Context level 1: version `00` is
    /// exactly `00-<32 hex>-<16 hex>-<2 hex>` in lowercase; a later version may append fields
    /// after a `-`, which are ignored; version `ff`, an all-zero id or anything else malformed is
    /// `None` (the caller then starts a trace of its own, as the standard asks).
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim_matches([' ', '\t']);
        let bytes = header.as_bytes();
        if bytes.len() < 55 || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let version = hex_byte(&bytes[0..2])?;
        match version {
            0xff => return None,
            0x00 if bytes.len() != 55 => return None,
            _ if bytes.len() > 55 && bytes[55] != b'-' => return None,
            _ => {}
        }
        let mut trace_id = [0u8; 16];
        for (i, byte) in trace_id.iter_mut().enumerate() {
            *byte = hex_byte(&bytes[3 + 2 * i..5 + 2 * i])?;
        }
        let mut parent_id = [0u8; 8];
        for (i, byte) in parent_id.iter_mut().enumerate() {
            *byte = hex_byte(&bytes[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&bytes[53..55])?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// A new trace, sampled, with a random trace id; its first span's id is the trace id's
    /// second half (random too: one draw of randomness, not two).
    pub fn root() -> Self {
        let trace_id = *Uuid::new_v4().as_bytes();
        let mut parent_id = [0u8; 8];
        parent_id.copy_from_slice(&trace_id[8..]);
        if parent_id == [0; 8] {
            parent_id = span_id();
        }
        Self {
            trace_id,
            parent_id,
            flags: SAMPLED,
        }
    }

    /// A span of the same trace, with the same flags, whose parent is this one.
    pub fn child(&self) -> Self {
        Self {
            parent_id: span_id(),
            ..*self
        }
    }

    /// Whether the caller records the trace.
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The trace id in lowercase hex (32 digits), as log lines and tracing tools show it.
    pub fn trace_id_hex(&self) -> String {
        let mut out = [0u8; 32];
        hex_into(&self.trace_id, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Written as a version `00` header: `00-<trace id>-<parent id>-<flags>`.
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex_into(&self.trace_id, &mut out[3..35]);
        hex_into(&self.parent_id, &mut out[36..52]);
        hex_into(&[self.flags], &mut out[53..55]);
        // Hex digits and dashes only: always UTF-8.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

/// A random span id, never all zero.
fn span_id() -> [u8; 8] {
    loop {
        let bytes = Uuid::new_v4().into_bytes();
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[..8]);
        if id != [0; 8] {
            return id;
        }
    }
}

/// Writes `bytes` as lowercase hex into `out` (twice as long).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// Two lowercase hex digits (the standard refuses uppercase).
fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(digit(*pair.first()?)? << 4 | digit(*pair.get(1)?)?)
}

/// Joins `tracing` spans to traces that cross processes: what an exporter (OpenTelemetry) knows
/// of its spans' ids. The binary installs one when it exports spans; the pipeline crates only
/// call `adopt` and `context`.
pub trait SpanLinks: Send + Sync + 'static {
    /// Makes the span `parent` names (in another process, mostly) the parent of `span`, which
    /// has not been entered yet.
    fn set_parent(&self, span: &Span, parent: &TraceParent);
    /// `span`'s own context, as its children in other processes name their parent; `None` when
    /// the span is not exported.
    fn context(&self, span: &Span) -> Option<TraceParent>;
}

static LINKS: OnceLock<Box<dyn SpanLinks>> = OnceLock::new();

/// Installs the process's span links; `false` when some were installed already (they stay).
pub fn install_links(links: impl SpanLinks) -> bool {
    LINKS.set(Box::new(links)).is_ok()
}

/// Whether spans are exported (span links are installed).
pub fn exporting() -> bool {
    LINKS.get().is_some()
}

/// Makes `parent` the parent of `span` (created, not entered yet) when spans are exported.
pub fn adopt(span: &Span, parent: &TraceParent) {
    if let Some(links) = LINKS.get() {
        links.set_parent(span, parent);
    }
}

/// The context a command records for `span`, the span that submits it: the span's own when
/// spans are exported (in the caller's trace, or in one the exporter started), else a child of
/// `incoming` (the request's `traceparent`) or, without one, a new trace.
pub fn context(span: &Span, incoming: Option<&TraceParent>) -> TraceParent {
    LINKS
        .get()
        .and_then(|links| links.context(span))
        .unwrap_or_else(|| incoming.map_or_else(TraceParent::root, TraceParent::child))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_version_00_header_reads_and_writes_back_the_same() {
        let parent = TraceParent::parse(EXAMPLE).expect("the standard's example");
        assert_eq!(parent.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            parent.parent_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert!(parent.sampled());
        assert_eq!(parent.to_string(), EXAMPLE);
        assert_eq!(TraceParent::parse(&format!(" {EXAMPLE}\t")), Some(parent));
    }

    #[test]
    fn a_malformed_header_is_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "0é-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_as_far_as_version_00_goes() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let parent = TraceParent::parse(later).expect("a later version");
        assert_eq!(parent.to_string(), EXAMPLE);
        assert_eq!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"),
            None
        );
    }

    #[test]
    fn a_child_keeps_the_trace_and_a_root_starts_one() {
        let parent = TraceParent::parse(EXAMPLE).expect("the standard's example");
        let child = parent.child();
        assert_eq!(child.trace_id, parent.trace_id);
        assert_ne!(child.parent_id, parent.parent_id);
        assert_eq!(child.flags, parent.flags);
        let (one, two) = (TraceParent::root(), TraceParent::root());
        assert_ne!(one.trace_id, two.trace_id);
        assert!(one.sampled());
        assert_eq!(TraceParent::parse(&one.to_string()), Some(one));
    }

    #[test]
    fn without_links_a_command_gets_a_child_of_the_request_or_a_new_trace() {
        let span = Span::none();
        let parent = TraceParent::parse(EXAMPLE).expect("the standard's example");
        assert_eq!(context(&span, Some(&parent)).trace_id, parent.trace_id);
        assert_ne!(context(&span, None).trace_id, parent.trace_id);
        assert!(!exporting());
    }
}
