//! The services a run uses, seen from outside: which broker its URL names (the machine's own
//! node, or the cluster of `--cluster-script`), `rabbitmqctl` against that broker, and the
//! whole-service faults: PostgreSQL restarted or stopped immediately (a crash: no checkpoint)
//! and started again, and every broker node SIGKILLed at once and started again. These touch
//! everything that shares the services, so a run makes them only when asked
//! (`--faults random` without `--no-service-faults`).

use anyhow::{Context as _, bail};
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};
use tokio::process::Command;

/// The longest one control command (a node's start included) may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(180);

/// The broker the run's URL points at, and how to control it.
#[derive(Debug, Clone)]
pub(crate) enum BrokerControl {
    /// The machine's own node: plain `rabbitmqctl`, `rabbitmq-server -detached`.
    Machine,
    /// The cluster of this script (`scripts/rabbit-cluster.sh`): `ctl N`, `kill N`, `restart N`.
    Cluster(PathBuf),
}

/// How many times the machine's node is killed and started for one fault, and how long each
/// start may take to boot.
const MACHINE_BOOTS: u32 = 3;
const MACHINE_BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// The nodes of a cluster script.
const CLUSTER_NODES: [&str; 3] = ["1", "2", "3"];

impl BrokerControl {
    /// The cluster of `script` when `amqp_url` names one of its nodes, else the machine's node.
    pub(crate) async fn of(amqp_url: &str, script: &Path) -> Self {
        let cluster_urls = match run(Command::new(script).arg("urls")).await {
            Ok(urls) => urls,
            Err(_) => return Self::Machine,
        };
        let cluster_urls: Vec<&str> = cluster_urls.trim().split(',').collect();
        if amqp_url
            .split(',')
            .any(|url| cluster_urls.contains(&url.trim()))
        {
            Self::Cluster(script.to_owned())
        } else {
            Self::Machine
        }
    }

    /// `rabbitmqctl ARGS` against the run's broker (on a cluster: the first node that answers);
    /// its stdout.
    pub(crate) async fn ctl(&self, args: &[&str]) -> anyhow::Result<String> {
        match self {
            Self::Machine => run(Command::new("rabbitmqctl").args(args)).await,
            Self::Cluster(script) => {
                let mut last = None;
                for node in CLUSTER_NODES {
                    match run(Command::new(script).arg("ctl").arg(node).args(args)).await {
                        Ok(out) => return Ok(out),
                        Err(error) => last = Some(error),
                    }
                }
                Err(last.unwrap_or_else(|| anyhow::anyhow!("no cluster node")))
            }
        }
    }

    /// Closes the broker connection whose client properties name it `name` (cmdbus names
    /// each process's connection `cmdbus <Role> <pid>`); true when one was closed.
    pub(crate) async fn close_connection(&self, name: &str) -> bool {
        let Ok(listing) = self
            .ctl(&["-q", "list_connections", "pid", "client_properties"])
            .await
        else {
            return false;
        };
        let quoted = format!("\"{name}\"");
        let Some(connection) = listing
            .lines()
            .find(|line| line.contains(&quoted))
            .and_then(|line| line.split('\t').next())
            .map(str::trim)
            .filter(|pid| pid.starts_with('<'))
        else {
            return false; // reconnecting right now, or not yet connected
        };
        self.ctl(&["-q", "close_connection", connection, "fault injection"])
            .await
            .is_ok()
    }

    /// SIGKILLs every node of the broker at once, then starts them again and waits until each
    /// booted.
    pub(crate) async fn kill_every_node(&self) -> anyhow::Result<()> {
        match self {
            Self::Machine => {
                // A node killed mid-write can hang in its queues' recovery (seen on a loaded
                // machine: "rebuilding indices from scratch", then nothing for ten minutes; a
                // fresh start of the same files boots at once): such a node is killed and
                // started again, as an operator would, before the fault counts as failed.
                for boot in 1..=MACHINE_BOOTS {
                    self.kill_machine_node().await?;
                    run(Command::new("rabbitmq-server").arg("-detached")).await?;
                    if self.booted_within(MACHINE_BOOT_TIMEOUT).await {
                        return Ok(());
                    }
                    eprintln!(
                        "the broker did not boot within {MACHINE_BOOT_TIMEOUT:?} \
                         (start {boot} of {MACHINE_BOOTS})"
                    );
                }
                bail!("the broker did not boot again")
            }
            Self::Cluster(script) => {
                for node in CLUSTER_NODES {
                    run(Command::new(script).args(["kill", node])).await?;
                }
                // Together: a node of a cluster that went down whole waits at boot for its
                // peers, so starting them one after another would wait on itself.
                let restarts = CLUSTER_NODES.map(|node| {
                    let mut restart = Command::new(script);
                    restart.args(["restart", node]);
                    run_owned(restart)
                });
                for restarted in futures_util::future::join_all(restarts).await {
                    restarted?;
                }
                Ok(())
            }
        }
    }

    /// SIGKILLs the machine's node: its VM's pid as the node tells it, or, when the node does
    /// not answer, every `beam.smp` of the `rabbitmq` user.
    async fn kill_machine_node(&self) -> anyhow::Result<()> {
        let pid = self
            .ctl(&["eval", "os:getpid()."])
            .await
            .unwrap_or_default();
        let pid = pid.trim().trim_matches('"').to_owned();
        if pid.is_empty() {
            // Nothing may be left to kill: `pkill` then finds no process, which is fine.
            let _ = run(Command::new("pkill").args(["-KILL", "-u", "rabbitmq", "beam.smp"])).await;
            return Ok(());
        }
        run(Command::new("kill").args(["-KILL", &pid])).await?;
        Ok(())
    }

    /// Whether the machine's node booted within `limit` (`await_startup` refuses a node whose
    /// VM is not up yet: it is asked until it waits).
    async fn booted_within(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self
            .ctl(&["await_startup", "--timeout", "30"])
            .await
            .is_err()
        {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(500)).await; // the VM comes up
        }
        true
    }
}

/// How PostgreSQL goes down in a service fault.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PostgresFault {
    /// `restart`: a clean shutdown (sessions ended, checkpoint), then a start.
    Restart,
    /// `stop -m immediate` (no checkpoint: recovery replays the WAL, like after a crash), then a
    /// start.
    Crash,
}

/// Takes the machine's PostgreSQL cluster down and up again.
pub(crate) async fn postgres(fault: PostgresFault) -> anyhow::Result<()> {
    let version = std::fs::read_dir("/etc/postgresql")
        .context("no /etc/postgresql")?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .next()
        .context("no PostgreSQL cluster in /etc/postgresql")?;
    let ctl = |action: &[&str]| {
        let mut command = Command::new("pg_ctlcluster");
        command
            .args(["--skip-systemctl-redirect", &version, "main"])
            .args(action);
        command
    };
    match fault {
        PostgresFault::Restart => run(&mut ctl(&["restart"])).await.map(drop),
        PostgresFault::Crash => {
            run(&mut ctl(&["stop", "-m", "immediate"])).await?;
            run(&mut ctl(&["start"])).await.map(drop)
        }
    }
}

/// Runs a control command (bounded); its stdout, or why it failed.
async fn run(command: &mut Command) -> anyhow::Result<String> {
    let output = tokio::time::timeout(
        CONTROL_TIMEOUT,
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .with_context(|| format!("{command:?} took too long"))?
    .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `run` of a command it owns (for futures that outlive the builder).
async fn run_owned(mut command: Command) -> anyhow::Result<String> {
    run(&mut command).await
}
