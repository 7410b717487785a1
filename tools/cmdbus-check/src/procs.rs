//! The run's child processes: `cmdbus-check node <role>` per slot, found by the port each prints,
//! and the signals the fault injector sends them (stop, continue, kill and respawn, terminate).

use anyhow::{Context as _, bail};
use std::{
    path::PathBuf,
    process::Stdio,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// How long a spawned node gets to print its port and report ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A role the run spawns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeRole {
    Api,
    Worker,
    /// A worker of the first exception lane (`CMDBUS_LANE=exceptions1`): re-runs parked work.
    LaneWorker,
    Notifier,
}

impl NodeRole {
    /// The `node` subcommand's argument.
    pub(crate) fn arg(self) -> &'static str {
        match self {
            NodeRole::Api => "api",
            NodeRole::Worker | NodeRole::LaneWorker => "worker",
            NodeRole::Notifier => "notifier",
        }
    }

    /// What the role's processes are called in logs and messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            NodeRole::LaneWorker => "lane-worker",
            role => role.arg(),
        }
    }

    /// Settings the role adds to the run's.
    fn vars(self) -> &'static [(&'static str, &'static str)] {
        match self {
            NodeRole::LaneWorker => &[("CMDBUS_LANE", "exceptions1")],
            _ => &[],
        }
    }

    /// How cmdbus names this role in its broker connection (`cmdbus <Role> <pid>`).
    pub(crate) fn connection_label(self) -> &'static str {
        match self {
            NodeRole::Api => "Api",
            NodeRole::Worker | NodeRole::LaneWorker => "Worker",
            NodeRole::Notifier => "Notifier",
        }
    }
}

/// One place in the cluster: its role and the process currently filling it.
#[derive(Debug)]
struct Slot {
    role: NodeRole,
    child: Option<Child>,
    pid: u32,
    port: u16,
    /// The process's log file (stderr).
    log: PathBuf,
    /// Stopped with SIGSTOP, or being killed and respawned: not offered to clients or faults.
    busy: bool,
}

/// A live process as the clients and the fault injector see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member {
    pub(crate) slot: usize,
    pub(crate) role: NodeRole,
    pub(crate) pid: u32,
    pub(crate) port: u16,
}

/// Every process of a run.
#[derive(Debug)]
pub(crate) struct Cluster {
    exe: PathBuf,
    vars: Vec<(String, String)>,
    log_dir: PathBuf,
    slots: Mutex<Vec<Slot>>,
    spawned: AtomicUsize,
    http: reqwest::Client,
}

impl Cluster {
    /// A cluster whose nodes run `exe node <role>` with `vars` and log to `log_dir`.
    pub(crate) fn new(exe: PathBuf, vars: Vec<(String, String)>, log_dir: PathBuf) -> Self {
        Self {
            exe,
            vars,
            log_dir,
            slots: Mutex::new(Vec::new()),
            spawned: AtomicUsize::new(0),
            http: reqwest::Client::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a process of `role` in a new slot and waits until it is ready.
    pub(crate) async fn add(&self, role: NodeRole) -> anyhow::Result<()> {
        let (child, pid, port, log) = self.spawn(role).await?;
        self.lock().push(Slot {
            role,
            child: Some(child),
            pid,
            port,
            log,
            busy: false,
        });
        Ok(())
    }

    async fn spawn(&self, role: NodeRole) -> anyhow::Result<(Child, u32, u16, PathBuf)> {
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        let path = self.log_dir.join(format!("{}-{n}.log", role.name()));
        let log = std::fs::File::create(&path).context("cannot create a node log")?;
        let mut child = Command::new(&self.exe)
            .arg("node")
            .arg(role.arg())
            .envs(
                self.vars
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str())),
            )
            .envs(role.vars().iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot spawn a node")?;
        let pid = child.id().context("node exited at once")?;
        let stdout = child.stdout.take().context("node stdout")?;
        let mut line = String::new();
        let mut stdout = BufReader::new(stdout);
        let read = stdout.read_line(&mut line);
        match tokio::time::timeout(START_TIMEOUT, read).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => {
                let _ = child.start_kill();
                bail!("{} node {pid} printed no port", role.name());
            }
        }
        let port: u16 = line.trim().parse().context("node printed no port")?;
        self.wait_ready(port).await?;
        Ok((child, pid, port, path))
    }

    /// Polls `/readyz` (the node's own readiness signal) until it answers 200.
    async fn wait_ready(&self, port: u16) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let url = format!("http://127.0.0.1:{port}/readyz");
        while tokio::time::Instant::now() < deadline {
            if let Ok(response) = self.http.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // polling readiness
        }
        bail!("node on port {port} never became ready")
    }

    /// The live, not-stopped members (optionally of one role).
    pub(crate) fn members(&self, role: Option<NodeRole>) -> Vec<Member> {
        self.lock()
            .iter()
            .enumerate()
            .filter(|(_, slot)| !slot.busy && slot.child.is_some())
            .filter(|(_, slot)| role.is_none_or(|role| slot.role == role))
            .map(|(index, slot)| Member {
                slot: index,
                role: slot.role,
                pid: slot.pid,
                port: slot.port,
            })
            .collect()
    }

    /// Marks a member busy (stopped or being replaced) if it still is the same process.
    pub(crate) fn take(&self, member: &Member) -> bool {
        let mut slots = self.lock();
        match slots.get_mut(member.slot) {
            Some(slot) if slot.pid == member.pid && !slot.busy && slot.child.is_some() => {
                slot.busy = true;
                true
            }
            _ => false,
        }
    }

    /// Gives a member taken with `take` back to the clients and faults.
    pub(crate) fn give_back(&self, member: &Member) {
        if let Some(slot) = self.lock().get_mut(member.slot) {
            slot.busy = false;
        }
    }

    /// SIGKILLs a taken member and starts a new process in its slot.
    pub(crate) async fn kill_and_respawn(&self, member: &Member) -> anyhow::Result<()> {
        let child = self
            .lock()
            .get_mut(member.slot)
            .and_then(|slot| slot.child.take());
        if let Some(mut child) = child {
            let _ = child.kill().await;
        }
        let spawned = self.spawn(member.role).await;
        let mut slots = self.lock();
        let slot = slots.get_mut(member.slot).context("slot vanished")?;
        slot.busy = false;
        let (child, pid, port, log) = spawned?;
        slot.child = Some(child);
        slot.pid = pid;
        slot.port = port;
        slot.log = log;
        Ok(())
    }

    /// Respawns every slot whose process is gone (a failed respawn during the run).
    pub(crate) async fn refill(&self) -> anyhow::Result<()> {
        let empty: Vec<Member> = self
            .lock()
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.child.is_none())
            .map(|(index, slot)| Member {
                slot: index,
                role: slot.role,
                pid: slot.pid,
                port: slot.port,
            })
            .collect();
        for member in empty {
            self.kill_and_respawn(&member).await?;
        }
        Ok(())
    }

    /// SIGTERMs every process and waits for it (a hard kill after `grace`).
    pub(crate) async fn stop_all(&self, grace: Duration) {
        let children: Vec<(u32, PathBuf, Child)> = self
            .lock()
            .iter_mut()
            .filter_map(|slot| {
                let child = slot.child.take()?;
                Some((slot.pid, slot.log.clone(), child))
            })
            .collect();
        for (pid, _, _) in &children {
            signal(*pid, "CONT").await; // a stopped process cannot handle SIGTERM
            signal(*pid, "TERM").await;
        }
        for (pid, log, mut child) in children {
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                eprintln!(
                    "node {pid} ({}) did not stop within {grace:?} of SIGTERM; killing it",
                    log.display()
                );
                let _ = child.kill().await;
            }
        }
    }
}

/// Sends `kill -<name> <pid>` (the processes are our own children).
pub(crate) async fn signal(pid: u32, name: &str) {
    let sent = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if !sent.is_ok_and(|status| status.success()) {
        eprintln!("cannot send SIG{name} to {pid}");
    }
}
