//! The client's command line (clap): the subcommands, their flags and `--help` texts, and how
//! `main` tells a client command line from a role's.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use uuid::Uuid;

/// What `--help` says about exit codes.
pub(crate) const EXIT_CODES: &str = "Exit codes: 0 success; 1 usage, transport or server error (a problem \
    from the server is printed as `error: <title> (<code>): <detail>` on stderr); with --wait, 2 \
    when the command failed and 3 when it was cancelled.";

/// The client subcommands' names: `main` sends a command line naming one of them here.
const COMMANDS: [&str; 7] = [
    "submit", "get", "list", "watch", "retry", "cancel", "tokens",
];

/// cmdbus client: submit, read and follow commands of a running cmdbus server.
#[derive(Debug, Parser)]
#[command(name = "cmdbus", version, about, after_help = EXIT_CODES)]
pub struct ClientCli {
    #[command(flatten)]
    pub(crate) target: Target,
    #[command(subcommand)]
    pub(crate) command: ClientCommand,
}

/// Where the server is and how to print.
#[derive(Debug, Args)]
#[command(next_help_heading = "Server and output")]
pub(crate) struct Target {
    /// The server's base URL (plain http: this build has no TLS; put it behind a local proxy or
    /// tunnel for https).
    #[arg(
        long,
        env = "CMDBUS_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub(crate) url: String,
    /// An API key or a browser token, sent as `Authorization: Bearer`. Prefer the environment
    /// variable: a flag shows in the process list.
    #[arg(long, env = "CMDBUS_KEY", hide_env_values = true, global = true)]
    pub(crate) key: Option<String>,
    /// Machine output: exactly one JSON document per line on stdout.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Submits a command; with --wait, follows it live to its end.
    #[command(after_help = EXIT_CODES)]
    Submit(SubmitArgs),
    /// Shows a command (with its payload).
    Get {
        /// The command's id.
        id: Uuid,
    },
    /// Lists commands, newest first.
    List(ListArgs),
    /// Prints every change of the given commands (or of all you can read), one line each,
    /// until Ctrl-C or, given ids, until all of them ended.
    Watch {
        /// The commands to follow.
        #[arg(conflicts_with = "all")]
        ids: Vec<Uuid>,
        /// Every command you can read (the default without ids).
        #[arg(long)]
        all: bool,
        /// Resume from a cursor a previous watch printed: every change after it is shown first.
        #[arg(long)]
        since: Option<String>,
    },
    /// Replays a failed or cancelled command, or every failure of a type (bulk).
    Retry(RetryArgs),
    /// Cancels a command: at once while it waits, or asks its running handler to stop.
    Cancel {
        /// The command's id.
        id: Uuid,
    },
    /// Browser tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
}

#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// The command type (`GET /v1/types` lists them).
    #[arg(value_name = "TYPE")]
    pub(crate) kind: String,
    /// The payload: JSON text, `@file` for a file's content, or `-` for stdin.
    #[arg(long)]
    pub(crate) payload: Option<String>,
    /// Submitting again with the same key returns the first command instead of a new one.
    #[arg(long)]
    pub(crate) idempotency_key: Option<String>,
    /// 0 (lowest, the default) to 9 (highest).
    #[arg(long)]
    pub(crate) priority: Option<i16>,
    /// Commands sharing a key run one at a time, in submission order.
    #[arg(long)]
    pub(crate) ordering_key: Option<String>,
    /// The end user the command belongs to.
    #[arg(long)]
    pub(crate) subject: Option<String>,
    /// Follow the command to its end (a progress bar on a terminal), print its result and exit
    /// with its outcome: 0 success, 2 fail, 3 cancelled.
    #[arg(long)]
    pub(crate) wait: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only commands in this status (scheduled, new, queue, running, success, fail, cancelled,
    /// discarded).
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// Only commands of this type.
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) kind: Option<String>,
    /// Only commands of this subject.
    #[arg(long)]
    pub(crate) subject: Option<String>,
    /// Commands per page (at most 500).
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: u32,
    /// The `next_cursor` of the previous page.
    #[arg(long)]
    pub(crate) cursor: Option<String>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["id", "kind"]))]
pub(crate) struct RetryArgs {
    /// The command to replay.
    #[arg(conflicts_with_all = ["kind", "error_code", "dry_run"])]
    pub(crate) id: Option<Uuid>,
    /// Replay every failure of this type (a page of 200 at a time, server side).
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) kind: Option<String>,
    /// Which failures: only `fail` can be replayed in bulk.
    #[arg(long, value_enum, default_value = "fail", requires = "kind")]
    pub(crate) status: RetryStatus,
    /// Only failures with this error code.
    #[arg(long, requires = "kind")]
    pub(crate) error_code: Option<String>,
    /// Count what would be replayed, change nothing.
    #[arg(long, requires = "kind")]
    pub(crate) dry_run: bool,
}

/// The statuses a bulk replay takes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RetryStatus {
    /// Failed commands.
    Fail,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokensCommand {
    /// Mints a browser token for one end user (printed alone on stdout).
    Mint {
        /// The end user: the token reads the commands submitted for this subject.
        #[arg(long)]
        sub: Option<String>,
        /// Or (also) these commands.
        #[arg(long = "id", value_name = "ID")]
        ids: Vec<Uuid>,
        /// Lifetime: `10m`, `1h`, `90s` or seconds.
        #[arg(long, default_value = "10m", value_parser = crate::config::parse_retention)]
        ttl: std::time::Duration,
        /// Scopes granted, comma separated: read (the default), submit, operate.
        #[arg(long, value_delimiter = ',')]
        scope: Vec<String>,
    },
}

/// Whether `args` (the whole command line) names a client subcommand: the first word that is
/// not one of the client's own flags (`--url`, `--key` with their values, `--json`).
pub fn is_client_command(args: &[OsString]) -> bool {
    let mut words = args.iter().skip(1);
    while let Some(word) = words.next() {
        match word.to_str() {
            Some("--url" | "--key") => {
                words.next();
            }
            Some(flag)
                if flag == "--json" || flag.starts_with("--url=") || flag.starts_with("--key=") => {
            }
            Some(word) => return COMMANDS.contains(&word),
            None => return false,
        }
    }
    false
}
