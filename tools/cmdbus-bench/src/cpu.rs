//! CPU time per process group, read from `/proc/<pid>/stat` (user + system time) at the start and
//! the end of a window: what bounds a run, seen by the kernel's own accounting. The services are
//! the processes listening on their ports (other PostgreSQL or RabbitMQ instances on the machine
//! are someone else's), with their children.

use std::{collections::HashMap, fmt::Write as _, time::Duration, time::Instant};

use crate::procfs::{self, MachineTicks};

/// Who spent the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Group {
    /// PostgreSQL: the postmaster, its helpers (which serve every database) and the backends of
    /// the database measured.
    Postgres,
    /// RabbitMQ's Erlang VM, `beam.smp`.
    RabbitMq,
    /// The cmdbus processes under test.
    Cmdbus,
    /// This load generator.
    Generator,
}

impl Group {
    const ALL: [Group; 4] = [
        Group::Postgres,
        Group::RabbitMq,
        Group::Cmdbus,
        Group::Generator,
    ];

    fn label(self) -> &'static str {
        match self {
            Group::Postgres => "postgres",
            Group::RabbitMq => "rabbitmq (beam.smp)",
            Group::Cmdbus => "cmdbus",
            Group::Generator => "cmdbus-bench",
        }
    }
}

/// Where the services listen.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub(crate) postgres: u16,
    pub(crate) amqp: u16,
}

/// Which processes belong to which group.
#[derive(Debug, Clone)]
pub(crate) struct Accounting {
    /// The cmdbus processes; `None`: every process named `cmdbus`.
    server_pids: Option<Vec<u32>>,
    own_pid: u32,
    /// The postmaster listening on the PostgreSQL port; `None`: every `postgres` process.
    postmaster: Option<u32>,
    /// The `beam.smp` listening on the AMQP port; `None`: every `beam.smp`.
    broker: Option<u32>,
    /// Only the backends of this database count (others' work on a shared cluster is theirs).
    database: Option<String>,
    ticks_per_second: f64,
}

impl Accounting {
    pub(crate) fn new(server_pids: Option<&[u32]>, ports: Ports, database: Option<&str>) -> Self {
        let postmaster = procfs::listener_of(ports.postgres);
        let broker = procfs::listener_of(ports.amqp);
        if postmaster.is_none() || broker.is_none() {
            eprintln!(
                "note: cannot tell which processes listen on ports {} and {}; counting every \
                 `postgres` and `beam.smp` process",
                ports.postgres, ports.amqp
            );
        }
        Self {
            server_pids: server_pids.map(<[u32]>::to_vec),
            own_pid: std::process::id(),
            postmaster,
            broker,
            database: database.map(str::to_owned),
            ticks_per_second: clock_ticks_per_second(),
        }
    }

    fn classify(&self, pid: u32, stat: &procfs::Stat) -> Option<Group> {
        let of = |root: Option<u32>, name: &str| match root {
            Some(root) => pid == root || (stat.ppid == root && stat.comm == name),
            None => stat.comm == name,
        };
        if pid == self.own_pid {
            Some(Group::Generator)
        } else if self
            .server_pids
            .as_ref()
            .map_or(stat.comm == "cmdbus", |pids| pids.contains(&pid))
        {
            Some(Group::Cmdbus)
        } else if of(self.postmaster, "postgres") && self.serves_database(pid) {
            Some(Group::Postgres)
        } else if self
            .broker
            .map_or(stat.comm == "beam.smp", |broker| pid == broker)
        {
            Some(Group::RabbitMq)
        } else {
            None
        }
    }

    /// Whether a PostgreSQL process works for the database measured (or for all of them).
    fn serves_database(&self, pid: u32) -> bool {
        let Some(wanted) = &self.database else {
            return true;
        };
        procfs::title(pid)
            .as_deref()
            .and_then(procfs::postgres_database)
            .is_none_or(|database| database == wanted)
    }

    /// The CPU ticks of every process of a group, and of the machine, now.
    pub(crate) fn sample(&self) -> Sample {
        let processes = procfs::processes()
            .filter_map(|(pid, stat)| {
                let group = self.classify(pid, &stat)?;
                Some((pid, (group, stat.ticks)))
            })
            .collect();
        Sample {
            at: Instant::now(),
            processes,
            machine: procfs::machine(),
        }
    }
    /// What each group spent between two samples. A process that started in between counts
    /// whole; one that exited in between is lost (pooled connections rarely do).
    pub(crate) fn usage(&self, before: &Sample, after: &Sample) -> Usage {
        let mut groups: HashMap<Group, (usize, u64)> = HashMap::new();
        for (pid, (group, ticks)) in &after.processes {
            let start = match before.processes.get(pid) {
                Some((same, start)) if same == group => *start,
                _ => 0,
            };
            let entry = groups.entry(*group).or_default();
            entry.0 += 1;
            entry.1 += ticks.saturating_sub(start);
        }
        let seconds = |ticks: u64| ticks as f64 / self.ticks_per_second;
        let machine_busy = match (before.machine, after.machine) {
            (Some(before), Some(after)) => Some(seconds(after.busy.saturating_sub(before.busy))),
            _ => None,
        };
        Usage {
            window: after.at.duration_since(before.at),
            groups: Group::ALL
                .iter()
                .map(|group| {
                    let (processes, ticks) = groups.get(group).copied().unwrap_or_default();
                    GroupUsage {
                        group: *group,
                        processes,
                        seconds: seconds(ticks),
                    }
                })
                .collect(),
            machine_busy,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// The kernel's clock tick (`sysconf(_SC_CLK_TCK)`), asked of `getconf`; 100 on every common
/// Linux architecture when that fails.
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// CPU ticks at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    at: Instant,
    processes: HashMap<u32, (Group, u64)>,
    machine: Option<MachineTicks>,
}

/// What a group spent over a window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupUsage {
    pub(crate) group: Group,
    pub(crate) processes: usize,
    pub(crate) seconds: f64,
}

/// What every group spent over a window.
#[derive(Debug, Clone)]
pub(crate) struct Usage {
    pub(crate) window: Duration,
    pub(crate) groups: Vec<GroupUsage>,
    /// Busy CPU seconds of the whole machine (every core), when `/proc/stat` could be read.
    pub(crate) machine_busy: Option<f64>,
    pub(crate) cores: usize,
}

impl Usage {
    /// CPU seconds of one group.
    pub(crate) fn seconds(&self, group: Group) -> f64 {
        self.groups
            .iter()
            .find(|usage| usage.group == group)
            .map_or(0.0, |usage| usage.seconds)
    }

    /// One line: milliseconds of CPU per unit of work of each group that spent any, and how busy
    /// the machine was.
    pub(crate) fn line(&self, units: u64, per: &str) -> String {
        let units = units.max(1) as f64;
        let mut parts: Vec<String> = self
            .groups
            .iter()
            .filter(|usage| usage.seconds > 0.0)
            .map(|usage| format!("{} {:.3}", usage.group.label(), usage.seconds * 1e3 / units))
            .collect();
        if parts.is_empty() {
            parts.push("none measured".to_owned());
        }
        let mut line = format!("cpu ms/{per}: {}", parts.join(", "));
        if let Some(busy) = self.machine_busy {
            let window = self.window.as_secs_f64().max(1e-9);
            let _ = write!(
                line,
                " (machine {:.2} of {} cores busy)",
                busy / window,
                self.cores
            );
        }
        line
    }

    /// A table: CPU seconds, cores busy on average, and milliseconds per unit of work (`per`
    /// names it: `command`, `message`).
    pub(crate) fn table(&self, units: u64, per: &str) -> String {
        let window = self.window.as_secs_f64().max(1e-9);
        let mut out = format!(
            "  {:<34} {:>8} {:>7} {:>12}\n",
            format!("cpu over {window:.1} s, {units} {per}s"),
            "cpu s",
            "cores",
            format!("ms/{per}"),
        );
        let mut row = |label: String, seconds: f64| {
            let per_unit = if units == 0 {
                "-".to_owned()
            } else {
                format!("{:.3}", seconds * 1e3 / units as f64)
            };
            let _ = writeln!(
                out,
                "  {label:<34} {seconds:>8.2} {:>7.2} {per_unit:>12}",
                seconds / window
            );
        };
        let mut accounted = 0.0;
        for usage in &self.groups {
            accounted += usage.seconds;
            let label = format!("{} ({} proc.)", usage.group.label(), usage.processes);
            row(label, usage.seconds);
        }
        if let Some(busy) = self.machine_busy {
            row(
                "rest of the machine".to_owned(),
                (busy - accounted).max(0.0),
            );
            row(format!("machine busy (of {} cores)", self.cores), busy);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_only_what_was_spent_in_the_window() {
        let accounting = Accounting {
            server_pids: Some(vec![7]),
            own_pid: 1,
            postmaster: None,
            broker: None,
            database: None,
            ticks_per_second: 100.0,
        };
        let at = Instant::now();
        let before = Sample {
            at,
            processes: HashMap::from([(7, (Group::Cmdbus, 100)), (8, (Group::Postgres, 50))]),
            machine: Some(MachineTicks {
                busy: 1000,
                total: 5000,
            }),
        };
        let after = Sample {
            at: at + Duration::from_secs(2),
            // 8 exited; 9 started during the window.
            processes: HashMap::from([(7, (Group::Cmdbus, 250)), (9, (Group::Postgres, 30))]),
            machine: Some(MachineTicks {
                busy: 1300,
                total: 5400,
            }),
        };
        let usage = accounting.usage(&before, &after);
        assert!((usage.seconds(Group::Cmdbus) - 1.5).abs() < 1e-9);
        assert!((usage.seconds(Group::Postgres) - 0.3).abs() < 1e-9);
        assert_eq!(usage.machine_busy, Some(3.0));
        let table = usage.table(1000, "command");
        assert!(table.contains("cmdbus (1 proc.)"), "{table}");
        assert!(table.contains("1.500"), "{table}");
    }

    #[test]
    fn a_service_is_its_listener_and_its_children_of_the_same_name() {
        let accounting = Accounting {
            server_pids: None,
            own_pid: 1,
            postmaster: Some(100),
            broker: Some(200),
            database: None,
            ticks_per_second: 100.0,
        };
        let stat = |comm: &str, ppid: u32| procfs::Stat {
            comm: comm.to_owned(),
            ppid,
            ticks: 0,
        };
        assert_eq!(
            accounting.classify(100, &stat("postgres", 1)),
            Some(Group::Postgres)
        );
        assert_eq!(
            accounting.classify(101, &stat("postgres", 100)),
            Some(Group::Postgres)
        );
        // Another cluster's backend, another broker node.
        assert_eq!(accounting.classify(301, &stat("postgres", 300)), None);
        assert_eq!(
            accounting.classify(200, &stat("beam.smp", 1)),
            Some(Group::RabbitMq)
        );
        assert_eq!(accounting.classify(201, &stat("beam.smp", 1)), None);
        assert_eq!(
            accounting.classify(5, &stat("cmdbus", 1)),
            Some(Group::Cmdbus)
        );
        assert_eq!(
            accounting.classify(1, &stat("cmdbus-bench", 1)),
            Some(Group::Generator)
        );
    }
}
