//! The `cmdbus` binary's client side: `submit`, `get`, `list`, `watch`, `retry`, `cancel` and
//! `tokens mint` talk to a running server over its HTTP api and WebSocket, like any other client.
//! They read no server setting (no database, no broker): `main` hands them the command line
//! before the roles' settings are parsed.
//!
//! Layout: `args.rs` holds the command line (clap); this file runs each command; `http.rs`
//! holds every HTTP call and turns problems into [`CliError`]; `follow.rs` follows commands live
//! (the WebSocket, falling back to the long-poll); `output.rs` prints lines, JSON and the bar.

mod args;
mod follow;
mod http;
mod output;

pub use args::{ClientCli, is_client_command};

use args::{ClientCommand, RetryStatus, SubmitArgs, TokensCommand};
use clap::Parser as _;
use http::Api;
use output::Output;
use serde_json::{Value, json};
use std::{ffi::OsString, io::Read as _, process::ExitCode};

/// Runs the client command line `args` and says how the process exits.
pub async fn main(args: Vec<OsString>) -> ExitCode {
    let cli = match ClientCli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // Help and version are answers, not mistakes; a usage error exits 1 (2 says `fail`).
            return if error.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let output = Output::new(cli.target.json);
    match run(cli, &output).await {
        Ok(code) => code,
        Err(error) => {
            output.error(&error);
            ExitCode::from(1)
        }
    }
}

/// Why a client command could not do its job; every one exits 1.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The command line or its input is wrong.
    #[error("{0}")]
    Usage(String),
    /// The server could not be reached, or answered something that is not the api.
    #[error("{0}")]
    Transport(String),
    /// The server answered a problem (`application/problem+json`).
    #[error("{title} ({code}): {detail}")]
    Problem {
        title: String,
        code: String,
        detail: String,
    },
}

async fn run(cli: ClientCli, output: &Output) -> Result<ExitCode, CliError> {
    let api = Api::new(&cli.target.url, cli.target.key.as_deref())?;
    match cli.command {
        ClientCommand::Submit(args) => submit(&api, args, output).await,
        ClientCommand::Get { id } => {
            output.view(&api.get(id).await?);
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::List(args) => {
            let page = api
                .list(&[
                    ("status", args.status),
                    ("type", args.kind),
                    ("subject", args.subject),
                    ("limit", Some(args.limit.to_string())),
                    ("cursor", args.cursor),
                ])
                .await?;
            output.page(&page);
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Watch { ids, all: _, since } => {
            follow::watch(&api, &ids, since, output).await?;
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Retry(args) => {
            match (args.id, args.kind) {
                (Some(id), _) => output.view(&api.retry(id).await?),
                (None, kind) => {
                    let RetryStatus::Fail = args.status;
                    let body = json!({
                        "type": kind,
                        "error_code": args.error_code,
                        "dry_run": args.dry_run,
                    });
                    output.retried(&api.retry_matching(&body).await?, args.dry_run);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Cancel { id } => {
            output.view(&api.cancel(id).await?);
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Tokens(TokensCommand::Mint {
            sub,
            ids,
            ttl,
            scope,
        }) => {
            let mut body = json!({"ttl_secs": ttl.as_secs().max(1)});
            if let Some(sub) = sub {
                body["sub"] = json!(sub);
            }
            if !ids.is_empty() {
                body["ids"] = json!(ids);
            }
            if !scope.is_empty() {
                body["scopes"] = json!(scope);
            }
            output.token(&api.mint_token(&body).await?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn submit(api: &Api, args: SubmitArgs, output: &Output) -> Result<ExitCode, CliError> {
    let mut body = json!({"type": args.kind, "payload": read_payload(args.payload.as_deref())?});
    if let Some(priority) = args.priority {
        body["priority"] = json!(priority);
    }
    if let Some(key) = args.ordering_key {
        body["ordering_key"] = json!(key);
    }
    if let Some(subject) = args.subject {
        body["subject"] = json!(subject);
    }
    let view = api.submit(&body, args.idempotency_key.as_deref()).await?;
    if !args.wait {
        output.view(&view);
        return Ok(ExitCode::SUCCESS);
    }
    output.submitted(&view);
    let last = follow::until_done(api, &view, output).await?;
    output.outcome(&last);
    Ok(match last["status"].as_str() {
        Some("success") => ExitCode::SUCCESS,
        Some("fail") => ExitCode::from(2),
        Some("cancelled") => ExitCode::from(3),
        _ => ExitCode::from(1),
    })
}

/// `--payload`: JSON text, `@file`, or `-` for stdin; `null` when absent.
fn read_payload(payload: Option<&str>) -> Result<Value, CliError> {
    let (text, from) = match payload {
        None => return Ok(Value::Null),
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|error| {
                    CliError::Usage(format!("cannot read the payload from stdin: {error}"))
                })?;
            (text, "stdin".to_owned())
        }
        Some(path) if path.starts_with('@') => {
            let path = &path[1..];
            let text = std::fs::read_to_string(path).map_err(|error| {
                CliError::Usage(format!("cannot read the payload file {path}: {error}"))
            })?;
            (text, path.to_owned())
        }
        Some(text) => (text.to_owned(), "--payload".to_owned()),
    };
    serde_json::from_str(&text)
        .map_err(|error| CliError::Usage(format!("the payload ({from}) is not JSON: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn client_commands_are_told_from_roles() {
        assert!(is_client_command(&words("cmdbus submit demo.echo")));
        assert!(is_client_command(&words(
            "cmdbus --url http://x:1 --json get 1"
        )));
        assert!(is_client_command(&words(
            "cmdbus --key=k tokens mint --sub u"
        )));
        assert!(!is_client_command(&words("cmdbus")));
        assert!(!is_client_command(&words("cmdbus api")));
        assert!(!is_client_command(&words(
            "cmdbus --listen 127.0.0.1:1 all"
        )));
        assert!(!is_client_command(&words("cmdbus keys create --name x")));
    }

    #[test]
    fn payloads_are_json_or_refused() {
        assert_eq!(read_payload(None).ok(), Some(Value::Null));
        assert_eq!(read_payload(Some(r#"{"a":1}"#)).ok(), Some(json!({"a": 1})));
        let Err(CliError::Usage(message)) = read_payload(Some("{a")) else {
            panic!("bad JSON accepted");
        };
        assert!(
            message.starts_with("the payload (--payload) is not JSON"),
            "{message}"
        );
        assert!(matches!(
            read_payload(Some("@/nonexistent/x.json")),
            Err(CliError::Usage(_))
        ));
    }
}
