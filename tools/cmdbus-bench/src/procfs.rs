//! What `/proc` says about processes: CPU time and parent (`/proc/<pid>/stat`), resident memory
//! (`/proc/<pid>/status`), the machine's CPU time (`/proc/stat`), and which process listens on a
//! TCP port (`/proc/net/tcp*` and the socket links under `/proc/<pid>/fd`).

/// The fields of `/proc/<pid>/stat` the benchmark reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stat {
    /// The executable's name, at most 15 bytes (`comm`).
    pub(crate) comm: String,
    /// The parent process.
    pub(crate) ppid: u32,
    /// User plus system time, in clock ticks.
    pub(crate) ticks: u64,
}

/// Parses a `/proc/<pid>/stat` line. The name sits in parentheses and may itself contain spaces
/// and parentheses, so the fields are counted from the last `)`.
pub(crate) fn parse_stat(line: &str) -> Option<Stat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line.get(open + 1..close)?.to_owned();
    // After the name: state (field 3), ppid (4), ..., utime (14), stime (15).
    let mut rest = line.get(close + 1..)?.split_ascii_whitespace();
    let ppid: u32 = rest.nth(1)?.parse().ok()?;
    let utime: u64 = rest.nth(9)?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some(Stat {
        comm,
        ppid,
        ticks: utime + stime,
    })
}

/// Every process, with its stat.
pub(crate) fn processes() -> impl Iterator<Item = (u32, Stat)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let line = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_stat(&line)?))
        })
}

/// Every process named `name`.
pub(crate) fn pids_named(name: &str) -> Vec<u32> {
    processes()
        .filter_map(|(pid, stat)| (stat.comm == name).then_some(pid))
        .collect()
}

/// The database a PostgreSQL process works for, from its title (`postgres: 15/main: postgres
/// cmdbus_bench 127.0.0.1(41234) idle`): a client backend's or an autovacuum worker's. `None`
/// for the postmaster and the cluster's helpers (checkpointer, WAL writer, …), which serve every
/// database.
pub(crate) fn postgres_database(title: &str) -> Option<&str> {
    let mut words: Vec<&str> = title
        .strip_prefix("postgres: ")?
        .split_whitespace()
        .collect();
    // A cluster name (`15/main:`) comes first when the cluster has one.
    if words.first().is_some_and(|word| word.ends_with(':')) {
        words.remove(0);
    }
    match words.as_slice() {
        ["autovacuum", "worker", database, ..] => Some(database),
        [_user, database, client, ..] if client.contains('(') || *client == "[local]" => {
            Some(database)
        }
        _ => None,
    }
}

/// A process's title: its command line with the NULs as spaces.
pub(crate) fn title(pid: u32) -> Option<String> {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&bytes).replace('\0', " "))
}

/// Busy and total ticks of the whole machine, from the `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MachineTicks {
    pub(crate) busy: u64,
    pub(crate) total: u64,
}

pub(crate) fn parse_machine(proc_stat: &str) -> Option<MachineTicks> {
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

pub(crate) fn machine() -> Option<MachineTicks> {
    parse_machine(&std::fs::read_to_string("/proc/stat").ok()?)
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

/// The socket inodes listening on `port` in a `/proc/net/tcp` or `tcp6` table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            // State 0A is LISTEN.
            let listening = *fields.get(3)? == "0A";
            (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| fields.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

/// The process listening on a local TCP port, if `/proc` lets us see it (another user's
/// descriptors are visible to root only).
pub(crate) fn listener_of(port: u16) -> Option<u32> {
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let links: Vec<String> = inodes
        .iter()
        .map(|inode| format!("socket:[{inode}]"))
        .collect();
    processes().map(|(pid, _)| pid).find(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .any(|target| links.iter().any(|link| target.as_os_str() == link.as_str()))
    })
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
                comm: "beam (smp) x".to_owned(),
                ppid: 1,
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
    fn a_backend_names_its_database_and_a_helper_none() {
        let backend = "postgres: 15/main: postgres cmdbus_bench 127.0.0.1(58496) idle";
        assert_eq!(postgres_database(backend), Some("cmdbus_bench"));
        assert_eq!(
            postgres_database("postgres: app other [local] SELECT"),
            Some("other")
        );
        assert_eq!(
            postgres_database("postgres: 15/main: autovacuum worker cmdbus_bench"),
            Some("cmdbus_bench")
        );
        assert_eq!(postgres_database("postgres: 15/main: walwriter "), None);
        assert_eq!(
            postgres_database("postgres: 15/main: logical replication launcher"),
            None
        );
        assert_eq!(
            postgres_database("/usr/lib/postgresql/15/bin/postgres -D /var/lib/x"),
            None
        );
    }

    #[test]
    fn only_listening_sockets_of_the_port_are_found() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 0100007F:1628 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 7470 1 0 100 0 0 10 0\n   \
            1: 0100007F:1628 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000   106        0 9911 1 0 20 4 30 10 -1\n   \
            2: 0100007F:2238 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 8080 1 0 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 5672), vec![7470]);
        assert_eq!(listening_inodes(table, 8760), vec![8080]);
        assert!(listening_inodes(table, 80).is_empty());
    }
}
