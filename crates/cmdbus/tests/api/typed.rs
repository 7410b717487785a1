//! Typed handlers: the payload checked against the type's JSON Schema at submit (`422
//! invalid_payload` with a pointer per error, nothing recorded), the schemas published in
//! `/v1/types` and `/openapi.json`, and a schema that changes when a worker registers a new
//! version checked from then on.

use super::*;
use cmdbus_worker::{Context, HandlerError, Registry};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A payload with a nested object and a bounded field.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Transfer {
    /// Cents, at least 1.
    #[schemars(range(min = 1))]
    amount: i64,
    to: Account,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct Account {
    iban: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Receipt {
    amount: i64,
    iban: String,
}

fn transfer_type() -> cmdbus_domain::TypeInfo {
    common::test_type("test.transfer", 1)
}

/// The demo handlers and `test.transfer`.
fn registry() -> Registry {
    let mut registry = cmdbus::builtin_registry();
    registry.register_typed(
        transfer_type(),
        |_ctx: Context, transfer: Transfer| async move {
            Ok::<_, HandlerError>(Receipt {
                amount: transfer.amount,
                iban: transfer.to.iban,
            })
        },
    );
    registry.register_typed_blocking(
        common::test_type("test.checksum", 1),
        |_ctx: Context, bytes: Vec<u8>| -> Result<u32, HandlerError> {
            Ok(bytes.iter().map(|&b| u32::from(b)).sum())
        },
    );
    registry
}

async fn typed_app() -> TestApp {
    TestApp::start_with(Env::new(), Role::All, registry(), |_| {}).await
}

fn pointers(problem: &Value) -> Vec<String> {
    let mut pointers: Vec<String> = problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| error["pointer"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    pointers.sort();
    pointers
}

#[tokio::test]
async fn a_bad_payload_is_refused_with_each_pointer_and_a_good_one_runs() {
    let app = typed_app().await;

    let (status, problem) = app
        .submit(json!({"type": "test.transfer", "payload": {"amount": 0, "to": {"iban": 7}, "memo": "x"}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "invalid_payload");
    assert_eq!(
        pointers(&problem),
        ["/payload", "/payload/amount", "/payload/to/iban"],
        "the unknown field (at the object), the bound and the nested type: {problem}"
    );
    for error in problem["errors"].as_array().expect("errors") {
        assert!(
            error["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{error}"
        );
    }
    // A missing field is pointed at where it belongs; a missing payload is refused too.
    let (status, problem) = app
        .submit(json!({"type": "test.transfer", "payload": {"to": {}}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        pointers(&problem),
        ["/payload/amount", "/payload/to/iban"],
        "{problem}"
    );
    let (status, problem) = app.submit(json!({"type": "demo.add"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(pointers(&problem), ["/payload"], "{problem}");
    assert_eq!(
        app.count("select count(*) from commands").await,
        0,
        "nothing refused was recorded"
    );

    let id = app
        .submit_ok(
            json!({"type": "test.transfer", "payload": {"amount": 250, "to": {"iban": "DE02"}}}),
        )
        .await;
    let done = app.wait_status(id, "success", T).await;
    assert_eq!(done["result"], json!({"amount": 250, "iban": "DE02"}));
    let id = app
        .submit_ok(json!({"type": "demo.add", "payload": {"a": 2, "b": 40}}))
        .await;
    let done = app.wait_status(id, "success", T).await;
    assert_eq!(done["result"], json!({"sum": 42}));
    // A blocking typed handler: checked at submit the same way.
    let (status, problem) = app
        .submit(json!({"type": "test.checksum", "payload": [1, 256]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(pointers(&problem), ["/payload/1"], "{problem}");
    let id = app
        .submit_ok(json!({"type": "test.checksum", "payload": [1, 2, 255]}))
        .await;
    let done = app.wait_status(id, "success", T).await;
    assert_eq!(done["result"], 258);

    // An untyped type takes any payload, as it always did.
    for payload in [json!(null), json!("text"), json!({"amount": 0, "to": 1})] {
        let id = app
            .submit_ok(json!({"type": "demo.echo", "payload": payload}))
            .await;
        let done = app.wait_status(id, "success", T).await;
        assert_eq!(done["result"], payload);
    }
    app.stop().await;
}

#[tokio::test]
async fn the_schemas_are_published_in_types_and_the_description() {
    let app = typed_app().await;
    let types: Value = app.get_json("/v1/types").await;
    let items = types["items"].as_array().expect("items");
    let find = |name: &str| {
        items
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} listed: {types}"))
    };
    let add = find("demo.add");
    assert_eq!(
        add["payload_schema"]["required"],
        json!(["a", "b"]),
        "{add}"
    );
    assert_eq!(add["result_schema"]["required"], json!(["sum"]), "{add}");
    let transfer = find("test.transfer");
    assert_eq!(
        transfer["payload_schema"]["properties"]["to"]["$ref"],
        "#/$defs/Account"
    );
    let echo = find("demo.echo");
    assert!(echo["payload_schema"].is_null() && echo["result_schema"].is_null());

    let doc: Value = app.get_json("/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Payload.demo.add"]["required"], json!(["a", "b"]));
    assert_eq!(schemas["Result.demo.add"]["required"], json!(["sum"]));
    assert_eq!(
        schemas["Payload.test.transfer"]["properties"]["to"]["$ref"],
        "#/components/schemas/Payload.test.transfer.Account"
    );
    assert_eq!(
        schemas["Payload.test.transfer.Account"]["required"],
        json!(["iban"])
    );
    assert!(schemas.get("Payload.demo.echo").is_none(), "untyped");
    let description = schemas["SubmitRequest"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        description.contains("`demo.add`: `#/components/schemas/Payload.demo.add`"),
        "{description}"
    );
    assert_eq!(
        schemas["Problem"]["properties"]["errors"]["type"], "array",
        "{}",
        schemas["Problem"]
    );
    app.stop().await;
}

#[derive(Debug, Deserialize, JsonSchema)]
struct First {
    #[allow(dead_code)]
    a: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct Second {
    b: i64,
}

#[tokio::test]
async fn a_schema_registered_again_by_a_worker_is_checked_from_then_on() {
    let env = Env::new();
    let mut first = Registry::new();
    first.register_typed(
        common::test_type("test.versioned", 3),
        |_ctx: Context, _: First| async move { Ok::<_, HandlerError>(()) },
    );
    // The api alone: what it accepts stays queued.
    let api = TestApp::start_with(env.clone(), Role::Api, first, |_| {}).await;
    let old = api
        .submit_ok(json!({"type": "test.versioned", "payload": {"a": 1}}))
        .await;
    let (status, _) = api
        .submit(json!({"type": "test.versioned", "payload": {"b": 1}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A new version of the worker registers the type with another payload.
    let mut second = Registry::new();
    second.register_typed(
        common::test_type("test.versioned", 3),
        |_ctx: Context, second: Second| async move { Ok::<_, HandlerError>(second.b) },
    );
    let worker = TestApp::start_with(env, Role::Worker, second, |_| {}).await;
    let deadline = tokio::time::Instant::now() + T;
    let new = loop {
        let (status, view) = api
            .submit(json!({"type": "test.versioned", "payload": {"b": 5}}))
            .await;
        if status == StatusCode::ACCEPTED {
            break id_of(&view);
        }
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{view}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new schema is not used: {view}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await; // polling the api's catalogue
    };
    let (status, problem) = api
        .submit(json!({"type": "test.versioned", "payload": {"a": 1}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "invalid_payload");

    let done = api.wait_status(new, "success", T).await;
    assert_eq!(done["result"], 5);
    // A command accepted under the old schema fails for good in the new handler, with serde's
    // reason, rather than running with a payload it cannot read.
    let failed = api.wait_status(old, "fail", T).await;
    assert_eq!(failed["error"]["code"], "invalid_payload", "{failed}");
    assert_eq!(failed["attempt"], 1, "not retried: {failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`b`")),
        "{failed}"
    );
    worker.stop_keeping_env().await;
    api.stop().await;
}
