//! What the client prints. With `--json`, stdout carries exactly one JSON document per line (the
//! server's own views and answers); without it, lines for a person. Notes and errors go to
//! stderr. The progress bar of `submit --wait` is drawn only when stdout is a terminal.

use super::CliError;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::io::IsTerminal as _;

/// How to print.
#[derive(Debug)]
pub(crate) struct Output {
    json: bool,
    terminal: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        Self {
            json,
            terminal: std::io::stdout().is_terminal(),
        }
    }

    pub(crate) fn error(&self, error: &CliError) {
        eprintln!("error: {error}");
    }

    pub(crate) fn note(&self, text: &str) {
        eprintln!("{text}");
    }

    /// A command's view (`get`, `cancel`, `retry ID`, `submit` without `--wait`).
    pub(crate) fn view(&self, view: &Value) {
        if self.json {
            println!("{view}");
        } else {
            println!("{}", pretty(view));
        }
    }

    /// A page of `list`.
    pub(crate) fn page(&self, page: &Value) {
        if self.json {
            println!("{page}");
            return;
        }
        let empty = Vec::new();
        let items = page["items"].as_array().unwrap_or(&empty);
        for view in items {
            println!(
                "{}  {:<9}  {:<20}  {:>4}  {}",
                text(&view["id"]),
                text(&view["status"]),
                text(&view["type"]),
                percent(view),
                text(&view["created_at"])
            );
        }
        if let Some(next) = page["next_cursor"].as_str() {
            eprintln!("more: --cursor {next}");
        }
    }

    /// A bulk replay's counts.
    pub(crate) fn retried(&self, counts: &Value, dry_run: bool) {
        if self.json {
            println!("{counts}");
        } else {
            let retried = if dry_run {
                "nothing replayed (dry run)".to_owned()
            } else {
                format!("{} replayed", counts["retried"])
            };
            println!("{} matched, {retried}", counts["matched"]);
        }
    }

    /// A minted token: alone on stdout, so that `$(cmdbus tokens mint …)` is the token.
    pub(crate) fn token(&self, minted: &Value) {
        if self.json {
            println!("{minted}");
        } else {
            println!("{}", text(&minted["token"]));
            // Seconds since the epoch, as the server says it.
            eprintln!("expires at {}", minted["expires_at"]);
        }
    }

    /// `watch`: one line per change.
    pub(crate) fn change(&self, view: &Value) {
        if self.json {
            println!("{view}");
            return;
        }
        let mut line = format!(
            "v{:<7} {} {:<14} {:<9} {:>4}",
            view["version"],
            text(&view["id"]),
            text(&view["type"]),
            text(&view["status"]),
            percent(view),
        );
        if let Some(note) = view["progress_note"].as_str() {
            line.push_str(&format!(" {note}"));
        }
        if !view["result"].is_null() {
            line.push_str(&format!(" result={}", view["result"]));
        }
        if let Some(error) = view["error"].as_object() {
            line.push_str(&format!(
                " error={}: {}",
                error.get("code").and_then(Value::as_str).unwrap_or("?"),
                error.get("message").and_then(Value::as_str).unwrap_or("")
            ));
        }
        println!("{line}");
    }

    /// `submit --wait`, once submitted: the id, for a person.
    pub(crate) fn submitted(&self, view: &Value) {
        if !self.json {
            println!("submitted {} ({})", text(&view["id"]), text(&view["type"]));
        }
    }

    /// `submit --wait`: how the command's progress is shown while it runs.
    pub(crate) fn progress(&self, view: &Value) -> Progress {
        let progress = if self.json {
            Progress::Silent
        } else if self.terminal {
            let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stdout());
            if let Ok(style) = ProgressStyle::with_template("[{bar:30}] {pos:>3}% {wide_msg}") {
                bar.set_style(style.progress_chars("#>-"));
            }
            Progress::Bar(bar)
        } else {
            Progress::Lines
        };
        progress.show(view);
        progress
    }

    /// `submit --wait`: the outcome, after the bar.
    pub(crate) fn outcome(&self, view: &Value) {
        if self.json {
            println!("{view}");
            return;
        }
        match view["status"].as_str() {
            Some("success") => println!("success: {}", view["result"]),
            Some("fail") => println!(
                "fail: {}: {}",
                text(&view["error"]["code"]),
                text(&view["error"]["message"])
            ),
            Some(status) => println!("{status}"),
            None => println!("{}", pretty(view)),
        }
    }
}

/// How a waiting `submit` shows progress.
#[derive(Debug)]
pub(crate) enum Progress {
    /// `--json`: only the final view.
    Silent,
    /// A terminal: a bar with the handler's note.
    Bar(ProgressBar),
    /// Piped: a line per change.
    Lines,
}

impl Progress {
    pub(crate) fn show(&self, view: &Value) {
        let status = text(&view["status"]);
        let note = view["progress_note"].as_str().unwrap_or("");
        match self {
            Progress::Silent => {}
            Progress::Bar(bar) => {
                if let Some(progress) = view["progress"].as_f64() {
                    bar.set_position((progress.clamp(0.0, 1.0) * 100.0).round() as u64);
                }
                bar.set_message(format!("{status} {note}"));
            }
            Progress::Lines => {
                let mut line = status.to_owned();
                if !view["progress"].is_null() {
                    line.push_str(&format!(" {:>4}", percent(view)));
                }
                if !note.is_empty() {
                    line.push_str(&format!(" {note}"));
                }
                println!("{line}");
            }
        }
    }

    pub(crate) fn note(&self, text: &str) {
        match self {
            Progress::Bar(bar) => bar.suspend(|| eprintln!("{text}")),
            _ => eprintln!("{text}"),
        }
    }

    /// Leaves the bar drawn at the command's end state (lines showed it already).
    pub(crate) fn finish(&self, view: &Value) {
        if let Progress::Bar(bar) = self {
            self.show(view);
            if view["status"] == "success" {
                bar.set_position(100);
            }
            bar.finish();
        }
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

fn percent(view: &Value) -> String {
    match view["progress"].as_f64() {
        Some(progress) => format!("{:.0}%", progress * 100.0),
        None => "-".to_owned(),
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}
