//! The chromedriver of the browser tests: started with Chromium under it in one process group and
//! a fresh profile, found by the port it prints, killed with its group on drop.

#![allow(dead_code)] // the browser tests use their own parts of it

use serde_json::Value;
use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
};
use tokio::{sync::oneshot, time::Instant};
use uuid::Uuid;

use crate::driver::{POLL, T};

pub(crate) const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";

/// Flags for a quiet, self-contained headless browser (plus a fresh profile and a window size).
pub(crate) const CHROMIUM_FLAGS: [&str; 7] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

/// A chromedriver this test started, with Chromium under it in one process group, and a fresh
/// profile directory. Dropping it kills the group, so a test that panics leaves no browser.
pub(crate) struct Chromedriver {
    pub(crate) child: Child,
    pub(crate) profile: PathBuf,
    pub(crate) url: String,
}

impl Chromedriver {
    pub(crate) async fn start() -> Self {
        for program in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: run scripts/test.sh, which installs Debian's chromium and \
                 chromium-driver"
            );
        }
        let profile = std::env::temp_dir().join(format!("cmdbus-chromium-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&profile).expect("profile directory");
        // Port 0: chromedriver picks a free port itself and says which, so no other process
        // can take it between our choice and its bind.
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let stdout = child.stdout.take().expect("piped stdout");
        let (announced, port) = oneshot::channel();
        std::thread::spawn(move || read_port(stdout, announced));
        let mut driver = Self {
            child,
            profile,
            url: String::new(),
        };
        let port = tokio::time::timeout(T, port)
            .await
            .expect("chromedriver announced its port in time")
            .expect("chromedriver exited before it announced its port");
        driver.url = format!("http://127.0.0.1:{port}");
        driver.wait_ready().await;
        driver
    }

    /// Polls `/status` until chromedriver says it accepts sessions.
    pub(crate) async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + T;
        while Instant::now() < deadline {
            if let Ok(response) = http.get(format!("{}/status", self.url)).send().await
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == true
            {
                return;
            }
            tokio::time::sleep(POLL).await; // polling readiness, not ordering
        }
        panic!("chromedriver at {} never became ready", self.url);
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The group id is chromedriver's pid (process_group(0)); Chromium inherited the group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Reads chromedriver's output for "... started successfully on port N." and keeps draining it
/// afterwards, so that a chatty chromedriver never blocks on a full pipe.
pub(crate) fn read_port(stdout: ChildStdout, announced: oneshot::Sender<u16>) {
    let mut announced = Some(announced);
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let port = line
            .rsplit_once("started successfully on port ")
            .and_then(|(_, port)| port.trim_end_matches('.').parse::<u16>().ok());
        if let Some(port) = port
            && let Some(sender) = announced.take()
        {
            let _ = sender.send(port);
        }
    }
}
