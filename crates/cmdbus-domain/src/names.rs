//! Every exchange and queue name, derived from one namespace so that environments and tests can
//! share a broker without seeing each other's messages.

/// Delay tiers for retries and deferrals, in milliseconds, shortest first.
pub const RETRY_TIERS: [u32; 5] = [1_000, 5_000, 30_000, 120_000, 600_000];

/// Which copy of a type's queue a worker consumes: the main queue or a parking lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lane {
    /// `<ns>.cmd.<type>`: live traffic.
    #[default]
    Main,
    /// `<ns>.cmd.<type>.exceptions1`: parked failures; failures here go to lane 2.
    Exceptions1,
    /// `<ns>.cmd.<type>.exceptions2`: parked failures of lane 1; failures here go back to lane 1.
    Exceptions2,
}

impl Lane {
    /// The suffix of the lane's queue name and its routing key in the exceptions exchange.
    pub fn suffix(self) -> Option<&'static str> {
        match self {
            Lane::Main => None,
            Lane::Exceptions1 => Some("exceptions1"),
            Lane::Exceptions2 => Some("exceptions2"),
        }
    }

    /// Where a command that fails for good in this lane is parked: main → exceptions1 →
    /// exceptions2 → exceptions1, so that a re-run never loops back into live traffic.
    pub fn parked_in(self) -> Lane {
        match self {
            Lane::Main | Lane::Exceptions2 => Lane::Exceptions1,
            Lane::Exceptions1 => Lane::Exceptions2,
        }
    }
}

/// A string that names no exception lane.
#[derive(Debug, thiserror::Error)]
#[error("unknown lane {0:?}")]
pub struct UnknownLane(pub String);

impl TryFrom<Option<String>> for Lane {
    type Error = UnknownLane;

    /// How the store reads its `lane` column: null is the main lane (not parked), otherwise
    /// the suffix of the exception lane.
    fn try_from(suffix: Option<String>) -> Result<Self, Self::Error> {
        match suffix.as_deref() {
            None => Ok(Lane::Main),
            Some("exceptions1") => Ok(Lane::Exceptions1),
            Some("exceptions2") => Ok(Lane::Exceptions2),
            Some(_) => Err(UnknownLane(suffix.unwrap_or_default())),
        }
    }
}

/// Names of the broker objects under one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    namespace: String,
}

impl Names {
    /// Names under `namespace` (e.g. `cmdbus`).
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
        }
    }

    /// The namespace itself.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Direct exchange that routes a command message by its type to the type's queue.
    pub fn commands_exchange(&self) -> String {
        format!("{}.commands", self.namespace)
    }

    /// The queue of a command type in a lane.
    pub fn command_queue(&self, kind: &str, lane: Lane) -> String {
        match lane.suffix() {
            None => format!("{}.cmd.{kind}", self.namespace),
            Some(suffix) => format!("{}.cmd.{kind}.{suffix}", self.namespace),
        }
    }

    /// Ordered partition `partition` of a type: single active consumer, no priorities.
    pub fn partition_queue(&self, kind: &str, partition: u16) -> String {
        format!("{}.cmd.{kind}.p{partition}", self.namespace)
    }

    /// Fanout exchange of state changes.
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.namespace)
    }

    /// Fanout exchange of control messages to every worker (cancel a running command).
    pub fn control_exchange(&self) -> String {
        format!("{}.control", self.namespace)
    }

    /// Headers exchange that routes a delayed message to its tier by the `cmdbus-delay` header,
    /// keeping its routing key so that dead-lettering sends it back to the right queue.
    pub fn retry_exchange(&self) -> String {
        format!("{}.retry", self.namespace)
    }

    /// The delay queue of one tier.
    pub fn retry_queue(&self, delay_ms: u32) -> String {
        format!("{}.retry.{}", self.namespace, tier_label(delay_ms))
    }

    /// Direct exchange of parked failures, routed by `<type>.<lane>`.
    pub fn exceptions_exchange(&self) -> String {
        format!("{}.exceptions", self.namespace)
    }
}

/// The partition of an ordering key: FNV-1a, so that every process (and every version of
/// cmdbus) maps a key to the same partition.
pub fn partition_of(ordering_key: &str, partitions: u16) -> u16 {
    let hash = ordering_key
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    (hash % u64::from(partitions.max(1))) as u16
}

/// `1000` → `1s`, `120000` → `2m`.
fn tier_label(delay_ms: u32) -> String {
    if delay_ms.is_multiple_of(60_000) {
        format!("{}m", delay_ms / 60_000)
    } else if delay_ms.is_multiple_of(1_000) {
        format!("{}s", delay_ms / 1_000)
    } else {
        format!("{delay_ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_namespace() {
        let names = Names::new("t1");
        assert_eq!(names.commands_exchange(), "t1.commands");
        assert_eq!(
            names.command_queue("demo.echo", Lane::Main),
            "t1.cmd.demo.echo"
        );
        assert_eq!(
            names.command_queue("demo.echo", Lane::Exceptions2),
            "t1.cmd.demo.echo.exceptions2"
        );
        assert_eq!(names.retry_queue(1_000), "t1.retry.1s");
        assert_eq!(names.retry_queue(120_000), "t1.retry.2m");
        assert_eq!(names.retry_queue(1_500), "t1.retry.1500ms");
        assert_eq!(names.partition_queue("demo.echo", 3), "t1.cmd.demo.echo.p3");
        // Stable across processes and releases: these values must never change.
        assert_eq!(partition_of("acct-1", 4), partition_of("acct-1", 4));
        assert_eq!(partition_of("", 4), (0xcbf2_9ce4_8422_2325_u64 % 4) as u16);
        assert!((0..16).all(|n| partition_of(&format!("k{n}"), 4) < 4));
    }
}
