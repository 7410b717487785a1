//! Prints what a browser would be told: subscribes to `/v1/ws` and prints every message.
//!
//! `CMDBUS_KEY=<key> cargo run --release -p cmdbus --example watch -- [--url
//! ws://127.0.0.1:8080/v1/ws] [--since CURSOR] [ID ...]` (no ids: every command; CURSOR as a
//! previous run printed it). The key (or a browser token) is sent as the upgrade's bearer.

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut url = "ws://127.0.0.1:8080/v1/ws".to_owned();
    let mut since: Option<String> = None;
    let mut ids: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--url" => url = args.next().context("--url needs a value")?,
            "--since" => since = Some(args.next().context("--since needs a value")?),
            _ => ids.push(arg),
        }
    }
    let key = std::env::var("CMDBUS_KEY").context("set CMDBUS_KEY to an API key or token")?;
    let mut request = url.as_str().into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    let mut subscribe = if ids.is_empty() {
        json!({"op": "subscribe", "all": true})
    } else {
        json!({"op": "subscribe", "ids": ids})
    };
    if let Some(since) = since {
        subscribe["since"] = json!(since);
    }
    println!("> {subscribe}");
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await?;
    while let Some(message) = socket.next().await {
        if let Message::Text(text) = message? {
            let value: Value = serde_json::from_str(text.as_str())?;
            match value["op"].as_str() {
                Some("command") => {
                    let c = &value["command"];
                    println!(
                        "< v{:<6} {} {:<10} {:<9} progress={} note={} result={} error={}",
                        c["version"],
                        c["id"],
                        c["type"].as_str().unwrap_or("?"),
                        c["status"].as_str().unwrap_or("?"),
                        c["progress"],
                        c["progress_note"],
                        c["result"],
                        c["error"]
                    );
                }
                _ => println!("< {value}"),
            }
        }
    }
    Ok(())
}
