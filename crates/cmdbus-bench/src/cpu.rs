//! CPU time per process group, read from `/proc/<pid>/stat` (user + system time) at the start and
//! the end of a window, and resident memory from `/proc/<pid>/status`: what bounds a run, seen by
//! the kernel's own accounting.

use std::{collections::HashMap, fmt::Write as _, time::Duration, time::Instant};

/// Who spent the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Group {
    /// Every `postgres` process: the postmaster, its helpers and every backend (of every client
    /// on the machine, not only cmdbus's).
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

/// The fields of `/proc/<pid>/stat` this module reads.
#[derive(Debug, PartialEq, Eq)]
struct Stat<'a> {
    /// The executable's name, at most 15 bytes (`comm`).
    comm: &'a str,
    /// User plus system time, in clock ticks.
    ticks: u64,
}

/// Parses a `/proc/<pid>/stat` line. The name sits in parentheses and may itself contain spaces
/// and parentheses, so the fields are counted from the last `)`.
fn parse_stat(line: &str) -> Option<Stat<'_>> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line.get(open + 1..close)?;
    // After the name: state (field 3), ..., utime (field 14), stime (field 15).
    let mut rest = line.get(close + 1..)?.split_ascii_whitespace();
    let utime: u64 = rest.nth(11)?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some(Stat {
        comm,
        ticks: utime + stime,
    })
}

/// Busy and total ticks of the whole machine, from the `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MachineTicks {
    busy: u64,
    total: u64,
}

fn parse_machine(proc_stat: &str) -> Option<MachineTicks> {
    let line = proc_stat.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    let at = |index: usize| fields.get(index).copied().unwrap_or(0);
    let idle = at(3) + at(4);
    let total: u64 = (0..8).map(at).sum();
    Some(MachineTicks {
        busy: total - idle,
        total,
    })
}

/// `VmRSS` of a `/proc/<pid>/status` text, in KiB.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Resident memory of a process, in KiB.
pub(crate) fn vm_rss_kib(pid: u32) -> Option<u64> {
    parse_vm_rss(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// Every process named `name` (as `/proc/<pid>/stat` has it).
pub(crate) fn pids_named(name: &str) -> Vec<u32> {
    processes()
        .filter_map(|(pid, line)| (parse_stat(&line)?.comm == name).then_some(pid))
        .collect()
}

fn processes() -> impl Iterator<Item = (u32, String)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let line = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, line))
        })
}

/// Which processes belong to which group.
#[derive(Debug, Clone)]
pub(crate) struct Accounting {
    /// The cmdbus processes; empty: every process named `cmdbus`.
    server_pids: Vec<u32>,
    own_pid: u32,
    ticks_per_second: f64,
}

impl Accounting {
    pub(crate) fn new(server_pids: &[u32]) -> Self {
        Self {
            server_pids: server_pids.to_vec(),
            own_pid: std::process::id(),
            ticks_per_second: clock_ticks_per_second(),
        }
    }

    fn classify(&self, pid: u32, comm: &str) -> Option<Group> {
        if pid == self.own_pid {
            Some(Group::Generator)
        } else if self.server_pids.contains(&pid)
            || (self.server_pids.is_empty() && comm == "cmdbus")
        {
            Some(Group::Cmdbus)
        } else if comm == "postgres" {
            Some(Group::Postgres)
        } else if comm == "beam.smp" {
            Some(Group::RabbitMq)
        } else {
            None
        }
    }

    /// The CPU ticks of every process of a group, and of the machine, now.
    pub(crate) fn sample(&self) -> Sample {
        let processes = processes()
            .filter_map(|(pid, line)| {
                let stat = parse_stat(&line)?;
                let group = self.classify(pid, stat.comm)?;
                Some((pid, (group, stat.ticks)))
            })
            .collect();
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|text| parse_machine(&text));
        Sample {
            at: Instant::now(),
            processes,
            machine,
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
    fn stat_lines_are_read_after_the_last_parenthesis() {
        let line = "4242 (beam (smp) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    700 55 0 0 20 0 30 0 12345 4096000 2048 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                comm: "beam (smp) x",
                ticks: 755
            })
        );
        assert_eq!(parse_stat("12 (short) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn the_machine_line_splits_busy_from_idle() {
        let text = "cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        assert_eq!(
            parse_machine(text),
            Some(MachineTicks {
                busy: 160,
                total: 1180
            })
        );
        assert_eq!(parse_machine("intr 1 2 3"), None);
    }

    #[test]
    fn resident_memory_is_read_in_kib() {
        let status = "Name:\tcmdbus\nVmPeak:\t  900000 kB\nVmRSS:\t   51234 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(51234));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn usage_counts_only_what_was_spent_in_the_window() {
        let accounting = Accounting {
            server_pids: vec![7],
            own_pid: 1,
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
}
