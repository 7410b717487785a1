//! Per-caller limits, the development start and `cmdbus keys`: a flood from one key is refused
//! while another key is served; long-polls, sockets and unfinished commands are capped; a start
//! without keys prints a development key on loopback and refuses anywhere else.

use crate::common::{Env, TestApp, WsClient, http_client_with, process::free_port};
use cmdbus::Role;
use cmdbus_auth::Scopes;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

const T: Duration = Duration::from_secs(20);

async fn key(app: &TestApp, tenant: &str) -> String {
    let (key, _) = cmdbus_auth::issue_key(&app.pool, tenant, "test", Scopes::all(), false)
        .await
        .expect("key recorded");
    key
}

#[tokio::test]
async fn a_flood_from_one_key_gets_429_while_another_key_is_served() {
    let app = TestApp::start_with(
        Env::new(),
        Role::Api,
        cmdbus::builtin_registry(),
        |config| {
            config.auth.rate_limit = 5;
            config.auth.rate_burst = 10;
        },
    )
    .await;
    let flooder = http_client_with(&key(&app, "default").await);
    let other = http_client_with(&key(&app, "default").await);
    let mut refused = None;
    for _ in 0..50 {
        let response = flooder
            .get(app.url("/v1/types"))
            .send()
            .await
            .expect("request");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("a flood of 50 within the burst of 10 was never refused");
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    let problem: Value = refused.json().await.expect("problem");
    assert_eq!(problem["code"], "rate_limited");
    let served = other
        .get(app.url("/v1/types"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        served.status(),
        StatusCode::OK,
        "another key pays for the flood"
    );
    app.stop().await;
}

#[tokio::test]
async fn long_polls_sockets_and_unfinished_commands_are_capped() {
    let app = TestApp::start_tweaked(|config| {
        config.auth.max_long_polls_per_key = 2;
        config.auth.max_sockets_per_tenant = 2;
        config.auth.max_unfinished_per_tenant = 3;
    })
    .await;
    // No worker handles this type: what is submitted stays unfinished.
    cmdbus_store::register_types(&app.pool, &[crate::common::test_type("test.idle", 1)])
        .await
        .expect("type registered");
    let key_a = key(&app, "alpha").await;
    let alpha = http_client_with(&key_a);
    let mut ids = Vec::new();
    for n in 0..3 {
        let response = alpha
            .post(app.url("/v1/commands"))
            .json(&json!({"type": "test.idle", "payload": n}))
            .send()
            .await
            .expect("submit");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let view: Value = response.json().await.expect("view");
        ids.push(view["id"].as_str().expect("id").to_owned());
    }
    let over = alpha
        .post(app.url("/v1/commands"))
        .json(&json!({"type": "test.idle"}))
        .send()
        .await
        .expect("submit");
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(over.headers().contains_key("retry-after"));
    assert_eq!(
        over.json::<Value>().await.expect("problem")["code"],
        "quota_exceeded"
    );
    let beta = http_client_with(&key(&app, "beta").await);
    let response = beta
        .post(app.url("/v1/commands"))
        .json(&json!({"type": "test.idle"}))
        .send()
        .await
        .expect("submit");
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "another tenant has its own quota"
    );

    // Three long-polls of one key at once: two hold (and answer 304 when their wait ends),
    // the third is refused.
    let url = app.url(&format!("/v1/commands/{}", ids[0]));
    let first = alpha.get(&url).send().await.expect("read");
    let etag = first.headers()["etag"].clone();
    let polls: Vec<_> = (0..3)
        .map(|_| {
            let request = alpha
                .get(format!("{url}?wait=3"))
                .header("if-none-match", etag.clone());
            tokio::spawn(async move { request.send().await.expect("long-poll").status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for poll in polls {
        statuses.push(poll.await.expect("task"));
    }
    statuses.sort();
    assert_eq!(
        statuses,
        [
            StatusCode::NOT_MODIFIED,
            StatusCode::NOT_MODIFIED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );

    // Two sockets per tenant (per process); the third is closed with 4429.
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut socket = WsClient::connect_with(&app.ws_url(), Some(&key_a)).await;
        socket.subscribe_all(None).await;
        open.push(socket);
    }
    let mut third = WsClient::connect_with(&app.ws_url(), Some(&key_a)).await;
    let (code, reason, _) = third.closed(T).await.expect("closed");
    assert_eq!(code, 4429, "{reason}");
    drop(open);
    app.stop().await;
}

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
