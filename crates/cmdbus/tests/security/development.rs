//! The development start and `cmdbus keys`: a start without keys prints a development key on
//! loopback and refuses anywhere else; a development key never works off loopback, and a start
//! off loopback revokes it. `/metrics`, like the development key, is open on loopback only,
//! unless its own token is set.

use crate::common::{Env, http_client_with, process::free_port};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

/// `cmdbus <args>` of the environment, with stdout and stderr captured (a server's stderr is
/// dropped: nobody would read it).
fn cmdbus(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Child {
    let serves = args.first().is_none_or(|first| *first != "keys");
    let mut command = Command::new(env!("CARGO_BIN_EXE_cmdbus"));
    command
        .args(args)
        .envs(env.vars())
        .stdout(Stdio::piped())
        .stderr(if serves {
            Stdio::null()
        } else {
            Stdio::piped()
        });
    for (name, value) in vars {
        command.env(name, value);
    }
    command.spawn().expect("cmdbus starts")
}

/// Reads stdout lines until one holds a key.
fn printed_key(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout");
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("stdout line");
        if let Some(key) = line
            .split_whitespace()
            .find(|word| word.starts_with("cmdbus_"))
        {
            return key.to_owned();
        }
    }
    panic!("no key printed");
}

async fn whoami(base: &str, key: Option<&str>) -> (StatusCode, Value) {
    let http = match key {
        Some(key) => http_client_with(key),
        None => reqwest::Client::new(),
    };
    let response = http
        .get(format!("{base}/v1/whoami"))
        .send()
        .await
        .expect("whoami");
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn types(base: &str, key: &str) -> Vec<String> {
    let response = http_client_with(key)
        .get(format!("{base}/v1/types"))
        .send()
        .await
        .expect("types");
    let list: Value = response.json().await.expect("types json");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test]
async fn a_loopback_start_without_keys_prints_a_development_key_and_replaces_it_next_time() {
    let env = Env::new();
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://{listen}");
    let vars = [("CMDBUS_LISTEN", listen.as_str())];
    let mut first = cmdbus(&env, &[], &vars);
    let first_key = printed_key(&mut first);
    crate::common::wait_ready(&reqwest::Client::new(), &base).await;
    let (status, me) = whoami(&base, Some(&first_key)).await;
    assert_eq!(
        (status, &me["kind"]),
        (StatusCode::OK, &json!("key")),
        "{me}"
    );
    assert_eq!(me["scopes"], json!(["submit", "read", "operate", "admin"]));
    assert!(
        types(&base, &first_key)
            .await
            .iter()
            .any(|t| t == "demo.echo"),
        "demo types on loopback"
    );
    assert_eq!(whoami(&base, None).await.0, StatusCode::UNAUTHORIZED);
    first.kill().expect("kill");
    first.wait().expect("exit");

    let mut second = cmdbus(&env, &[], &vars);
    let second_key = printed_key(&mut second);
    crate::common::wait_ready(&reqwest::Client::new(), &base).await;
    assert_ne!(first_key, second_key);
    assert_eq!(
        whoami(&base, Some(&first_key)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(whoami(&base, Some(&second_key)).await.0, StatusCode::OK);
    second.kill().expect("kill");
    second.wait().expect("exit");
    env.teardown(&cmdbus::builtin_registry().names())
        .await
        .expect("teardown");
}

#[tokio::test]
async fn a_public_address_needs_a_key_or_an_explicit_open_flag_and_gets_no_demo_handlers() {
    let env = Env::new();
    let port = free_port().to_string();
    let listen = format!("0.0.0.0:{port}");
    let base = format!("http://127.0.0.1:{port}");
    let vars = [("CMDBUS_LISTEN", listen.as_str())];

    let refused = Command::new(env!("CARGO_BIN_EXE_cmdbus"))
        .envs(env.vars())
        .env("CMDBUS_LISTEN", &listen)
        .output()
        .expect("exit");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("no API keys are configured"), "{stderr}");

    // `cmdbus keys`: made, listed without its secret, and it opens the door.
    let created = cmdbus(
        &env,
        &[
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "read,submit",
            "--name",
            "ci",
        ],
        &[],
    )
    .wait_with_output()
    .expect("keys create");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = String::from_utf8(created.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert!(key.starts_with("cmdbus_") && key.len() == 71, "{key}");
    let listed = cmdbus(&env, &["keys", "list"], &[])
        .wait_with_output()
        .expect("keys list");
    let listing = String::from_utf8(listed.stdout).expect("utf-8");
    assert!(
        listing.contains("acme") && listing.contains("submit,read"),
        "{listing}"
    );
    assert!(!listing.contains(&key), "a listing shows a secret");

    let mut server = cmdbus(&env, &[], &vars);
    crate::common::wait_ready(&reqwest::Client::new(), &base).await;
    let (status, me) = whoami(&base, Some(&key)).await;
    assert_eq!((status, &me["tenant"]), (StatusCode::OK, &json!("acme")));
    assert!(
        types(&base, &key)
            .await
            .iter()
            .all(|t| !t.starts_with("demo.")),
        "demo handlers registered on a public address"
    );
    server.kill().expect("kill");
    server.wait().expect("exit");

    let id = listing
        .lines()
        .find(|line| line.contains("acme"))
        .and_then(|line| line.split_whitespace().next())
        .expect("listed id")
        .to_owned();
    let revoked = cmdbus(&env, &["keys", "revoke", &id], &[])
        .wait_with_output()
        .expect("revoke");
    assert!(revoked.status.success());

    // No live key again: a deployment's bootstrap key opens the door (recorded once)...
    let bootstrap = cmdbus_auth::generate_key().expect("random").key;
    for _ in 0..2 {
        let mut server = cmdbus(
            &env,
            &[],
            &[
                ("CMDBUS_LISTEN", listen.as_str()),
                ("CMDBUS_BOOTSTRAP_KEY", bootstrap.as_str()),
            ],
        );
        crate::common::wait_ready(&reqwest::Client::new(), &base).await;
        let (status, me) = whoami(&base, Some(&bootstrap)).await;
        assert_eq!(
            (status, &me["scopes"][3]),
            (StatusCode::OK, &json!("admin"))
        );
        server.kill().expect("kill");
        server.wait().expect("exit");
    }
    let pool = sqlx::PgPool::connect(&env.database_url)
        .await
        .expect("pool");
    let recorded: i64 =
        sqlx::query_scalar("select count(*) from api_keys where name = 'bootstrap'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(recorded, 1);
    sqlx::query("update api_keys set revoked_at = now()")
        .execute(&pool)
        .await
        .expect("revoke all");
    pool.close().await;

    // ...and without one, only the explicit flag opens it, and it says so.
    let mut open = cmdbus(
        &env,
        &[],
        &[("CMDBUS_LISTEN", listen.as_str()), ("CMDBUS_OPEN", "true")],
    );
    crate::common::wait_ready(&reqwest::Client::new(), &base).await;
    let (status, me) = whoami(&base, None).await;
    assert_eq!((status, &me["kind"]), (StatusCode::OK, &json!("open")));
    open.kill().expect("kill");
    open.wait().expect("exit");
    env.teardown(&[]).await.expect("teardown");
}

/// A development key is for the developer's own machine: once the server listens on a public
/// address it is refused, and that start revoked it, so it stays refused back on loopback too.
#[tokio::test]
async fn a_development_key_never_works_off_loopback_and_a_public_start_revokes_it() {
    let env = Env::new();
    let port = free_port().to_string();
    let loopback = format!("127.0.0.1:{port}");
    let public = format!("0.0.0.0:{port}");
    let base = format!("http://{loopback}");

    let mut development = cmdbus(&env, &[], &[("CMDBUS_LISTEN", loopback.as_str())]);
    let development_key = printed_key(&mut development);
    crate::common::wait_ready(&reqwest::Client::new(), &base).await;
    assert_eq!(
        whoami(&base, Some(&development_key)).await.0,
        StatusCode::OK
    );
    development.kill().expect("kill");
    development.wait().expect("exit");

    let created = cmdbus(
        &env,
        &[
            "keys", "create", "--tenant", "acme", "--scopes", "read", "--name", "ops",
        ],
        &[],
    )
    .wait_with_output()
    .expect("keys create");
    assert!(created.status.success());
    let key = String::from_utf8(created.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();

    // A start on a public address prints no key, and the development key is refused.
    let mut server = cmdbus(&env, &[], &[("CMDBUS_LISTEN", public.as_str())]);
    let stdout = server.stdout.take().expect("stdout");
    crate::common::wait_ready(&reqwest::Client::new(), &base).await;
    let (status, me) = whoami(&base, Some(&development_key)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{me}");
    let (status, me) = whoami(&base, Some(&key)).await;
    assert_eq!((status, &me["tenant"]), (StatusCode::OK, &json!("acme")));
    // Nor does a development key made while it runs (by a loopback process of the same
    // database): the server off loopback refuses every development key, not only revoked ones.
    let pool = sqlx::PgPool::connect(&env.database_url)
        .await
        .expect("pool");
    let (fresh, _) = cmdbus_auth::issue_key(
        &pool,
        "default",
        "development",
        cmdbus_auth::Scopes::all(),
        true,
    )
    .await
    .expect("development key recorded");
    pool.close().await;
    assert_eq!(
        whoami(&base, Some(&fresh)).await.0,
        StatusCode::UNAUTHORIZED
    );
    server.kill().expect("kill");
    server.wait().expect("exit");
    let printed = std::io::read_to_string(stdout).expect("stdout");
    assert!(!printed.contains("cmdbus_"), "{printed}");

    // Back on loopback with a configured key, no development key is minted and the old one
    // stays revoked.
    let mut again = cmdbus(&env, &[], &[("CMDBUS_LISTEN", loopback.as_str())]);
    crate::common::wait_ready(&reqwest::Client::new(), &base).await;
    assert_eq!(
        whoami(&base, Some(&development_key)).await.0,
        StatusCode::UNAUTHORIZED
    );
    again.kill().expect("kill");
    again.wait().expect("exit");
    env.teardown(&cmdbus::builtin_registry().names())
        .await
        .expect("teardown");
}

#[tokio::test]
async fn metrics_need_the_metrics_token_and_are_closed_off_loopback_without_one() {
    // Every tenant's types and volumes are in the text: a tenant's key is not the credential.
    let token = "a-metrics-token-for-the-scraper";
    let app = crate::common::TestApp::start_tweaked(|config| {
        config.auth.metrics_token = Some(token.to_owned());
    })
    .await;
    let metrics = app.url("/metrics");
    let status = reqwest::get(&metrics).await.expect("metrics").status();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no credential");
    for wrong in [
        crate::common::test_key().key.as_str(),
        "a-metrics-token-for-the-scrapeR",
    ] {
        let status = http_client_with(wrong)
            .get(&metrics)
            .send()
            .await
            .expect("metrics")
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong}");
    }
    let scraped = reqwest::Client::new()
        .get(&metrics)
        .header("authorization", format!("bearer {token}"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(scraped.status(), StatusCode::OK);
    let text = scraped.text().await.expect("text");
    assert!(text.contains("cmdbus_commands{"), "{text}");
    app.stop().await;

    // Off loopback without a token set, nobody reads them; with one, the scraper does.
    let env = Env::new();
    env.authorize().await;
    let port = free_port().to_string();
    let listen = format!("0.0.0.0:{port}");
    let base = format!("http://127.0.0.1:{port}");
    for (set, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(token), StatusCode::OK),
    ] {
        let mut vars = vec![("CMDBUS_LISTEN", listen.as_str())];
        vars.extend(set.map(|token| ("CMDBUS_METRICS_TOKEN", token)));
        let mut server = cmdbus(&env, &[], &vars);
        crate::common::wait_ready(&reqwest::Client::new(), &base).await;
        let status = http_client_with(token)
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .status();
        assert_eq!(status, expected, "token set: {set:?}");
        server.kill().expect("kill");
        server.wait().expect("exit");
    }
    env.teardown(&[]).await.expect("teardown");
}
