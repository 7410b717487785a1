//! Per-caller limits: a flood from one key is refused while another key is served; long-polls,
//! sockets and unfinished commands are capped.

use crate::common::{Env, TestApp, WsClient, http_client_with};
use cmdbus::Role;
use cmdbus_auth::Scopes;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

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

#[tokio::test]
async fn tokens_for_different_ids_do_not_share_a_rate_bucket() {
    let app = TestApp::start_tweaked(|config| {
        config.auth.token_secret = Some(crate::SECRET.to_owned());
        config.auth.rate_limit = 5;
        config.auth.rate_burst = 10;
    })
    .await;
    let first = uuid::Uuid::now_v7();
    let token_for = |ids: Vec<uuid::Uuid>| {
        let now = chrono::Utc::now().timestamp();
        cmdbus_auth::sign(
            &cmdbus_auth::Claims {
                tenant: "default".to_owned(),
                sub: None,
                ids,
                scopes: vec!["read".to_owned()],
                exp: now + 300,
                iat: Some(now),
                nbf: None,
                iss: None,
                aud: None,
                key: None,
            },
            crate::SECRET.as_bytes(),
        )
    };
    // Both name `first` first: a bucket keyed by the first id would make one pay for the other.
    let flooder = http_client_with(&token_for(vec![first, uuid::Uuid::now_v7()]));
    let other = http_client_with(&token_for(vec![first, uuid::Uuid::now_v7()]));
    let url = app.url(&format!("/v1/commands/{first}"));
    let mut refused = false;
    for _ in 0..50 {
        let response = flooder.get(&url).send().await.expect("request");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "a flood of 50 within the burst of 10 was never refused"
    );
    let served = other.get(&url).send().await.expect("request");
    assert_ne!(
        served.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "another token naming the same first id pays for the flood"
    );
    app.stop().await;
}
