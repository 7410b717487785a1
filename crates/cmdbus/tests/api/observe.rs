//! Following one command across processes, for real: `cmdbus api`, `worker` and `notifier` as
//! child processes. With `CMDBUS_LOG_FORMAT=json` every log line is one JSON object, and the
//! lines about a command carry its id, type, attempt, tenant and trace id; with
//! `CMDBUS_OTLP_ENDPOINT` the processes export their spans to an OTLP/HTTP receiver inside the
//! test, and one submit's spans share one trace with the right parents.

use crate::common::{Env, http_client, id_of, process::Proc, wait_ready};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

const T: Duration = Duration::from_secs(30);

/// A caller's trace context, as a traced front end sends it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{CALLER_SPAN}-01")
}

/// Submits `body` with the caller's `traceparent` (when given); the command's view.
async fn submit(base: &str, body: Value, traceparent: Option<&str>) -> Value {
    let mut request = http_client()
        .post(format!("{base}/v1/commands"))
        .json(&body);
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = request.send().await.expect("submit");
    assert_eq!(response.status(), 202);
    response.json().await.expect("view")
}

/// Long-polls `id` until it is finished.
async fn wait_finished(base: &str, id: Uuid) -> Value {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let view: Value = http_client()
            .get(format!("{base}/v1/commands/{id}?wait=5"))
            .send()
            .await
            .expect("read")
            .json()
            .await
            .expect("view");
        if view["finished_at"].is_string() {
            return view;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never finished: {view}"
        );
    }
}

#[tokio::test]
async fn json_logs_carry_the_commands_fields_on_its_lines() {
    let env = Env::new();
    let log = std::env::temp_dir().join(format!("cmdbus-json-{}.log", env.namespace));
    let vars = [
        ("CMDBUS_LOG_FORMAT", "json"),
        ("CMDBUS_LOG", "info,cmdbus_api=debug,cmdbus_worker=debug"),
    ];
    let server = Proc::spawn_logging(&env, "all", &vars, &log);
    wait_ready(&reqwest::Client::new(), &server.base).await;
    env.authorize().await;
    let parent = traceparent();
    let submitted = submit(
        &server.base,
        json!({"type": "demo.echo", "payload": {"hello": "logs"}}),
        Some(&parent),
    )
    .await;
    let id = id_of(&submitted);
    assert_eq!(wait_finished(&server.base, id).await["status"], "success");

    // The worker logs `finished` once the row is updated, before the view can say so; poll the
    // file (bounded) for lines that are written as they happen.
    let deadline = tokio::time::Instant::now() + T;
    let lines: Vec<Value> = loop {
        let text = std::fs::read_to_string(&log).expect("the log");
        let lines: Vec<Value> = text
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("not one JSON object: {line:?}: {error}"))
            })
            .collect();
        let finished = lines
            .iter()
            .any(|line| line["message"] == "finished" && line["span"]["command.id"] == json!(id));
        if finished {
            break lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `finished` line: {text}"
        );
        tokio::task::yield_now().await;
    };
    assert!(
        lines
            .iter()
            .all(|line| line["timestamp"].is_string() && line["level"].is_string()),
        "every line is an event"
    );
    let mine: Vec<&Value> = lines
        .iter()
        .filter(|line| line["span"]["command.id"] == json!(id))
        .collect();
    let messages: Vec<&str> = mine
        .iter()
        .filter_map(|line| line["message"].as_str())
        .collect();
    for step in ["submitted", "claimed", "finished"] {
        assert!(messages.contains(&step), "a `{step}` line in {mine:?}");
    }
    for line in &mine {
        let span = &line["span"];
        assert_eq!(span["command.type"], "demo.echo", "{line}");
        assert_eq!(span["tenant"], "default", "{line}");
        assert_eq!(span["trace_id"], TRACE_ID, "the caller's trace: {line}");
        // The span list holds the same fields, innermost last.
        let spans = line["spans"].as_array().expect("the span list");
        assert_eq!(spans.last(), Some(span), "{line}");
    }
    for line in mine.iter().filter(|line| line["span"]["name"] != "submit") {
        assert_eq!(line["span"]["command.attempt"], 1, "a run's lines: {line}");
    }
    // The api's line is in the request's span too.
    let submitted_line = mine
        .iter()
        .find(|line| line["message"] == "submitted")
        .expect("a submitted line");
    assert_eq!(
        submitted_line["spans"][0]["name"], "request",
        "{submitted_line}"
    );
    drop(server);
    let _ = std::fs::remove_file(&log);
    env.teardown(&cmdbus::builtin_registry().names())
        .await
        .expect("teardown");
}

#[cfg(feature = "otel")]
mod otlp {
    //! The spans exported over OTLP/HTTP: a receiver (`POST /v1/traces`, a protobuf
    //! `ExportTraceServiceRequest`) keeps each span with its process's `cmdbus.role`.

    use super::{CALLER_SPAN, T, TRACE_ID, submit, traceparent, wait_finished};
    use crate::common::{Env, WsClient, id_of, process::Proc, wait_ready};
    use serde_json::json;
    use std::time::Duration;

    use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
    use opentelemetry_proto::tonic::{
        collector::trace::v1::ExportTraceServiceRequest,
        common::v1::{AnyValue, KeyValue, any_value},
    };
    use prost::Message as _;
    use std::sync::{Arc, Mutex};

    /// One received span, in the words of the test.
    #[derive(Debug, Clone)]
    struct Received {
        pub role: String,
        pub name: String,
        pub trace_id: String,
        pub span_id: String,
        pub parent_id: String,
        pub attributes: Vec<(String, String)>,
    }

    impl Received {
        fn attribute(&self, key: &str) -> Option<&str> {
            self.attributes
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value.as_str())
        }
    }

    fn text(value: Option<&AnyValue>) -> String {
        match value.and_then(|value| value.value.as_ref()) {
            Some(any_value::Value::StringValue(text)) => text.clone(),
            Some(any_value::Value::IntValue(number)) => number.to_string(),
            Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        }
    }

    fn pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
        attributes
            .iter()
            .map(|pair| (pair.key.clone(), text(pair.value.as_ref())))
            .collect()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    type Spans = Arc<Mutex<Vec<Received>>>;

    async fn receive(State(spans): State<Spans>, body: Bytes) -> StatusCode {
        let Ok(request) = ExportTraceServiceRequest::decode(body) else {
            return StatusCode::BAD_REQUEST;
        };
        let mut kept = spans.lock().expect("spans");
        for resource in request.resource_spans {
            let role = resource
                .resource
                .as_ref()
                .map(|resource| pairs(&resource.attributes))
                .unwrap_or_default()
                .into_iter()
                .find(|(key, _)| key == "cmdbus.role")
                .map(|(_, role)| role)
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    kept.push(Received {
                        role: role.clone(),
                        name: span.name.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_id: hex(&span.parent_span_id),
                        attributes: pairs(&span.attributes),
                    });
                }
            }
        }
        StatusCode::OK
    }

    /// Starts the receiver; its base URL and what it received so far.
    async fn receiver() -> (String, Spans) {
        let spans = Spans::default();
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(Arc::clone(&spans));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, spans)
    }

    /// The spans of `trace` received so far.
    fn of_trace(spans: &std::sync::Mutex<Vec<Received>>, trace: &str) -> Vec<Received> {
        let spans = spans.lock().expect("spans");
        spans
            .iter()
            .filter(|span| span.trace_id == trace)
            .cloned()
            .collect()
    }

    /// Waits (bounded) until the spans of `trace` include one named each of `names`.
    async fn wait_spans(
        spans: &std::sync::Mutex<Vec<Received>>,
        trace: &str,
        names: &[&str],
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let received = of_trace(spans, trace);
            if names
                .iter()
                .all(|name| received.iter().any(|span| span.name == *name))
            {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "spans {names:?} of {trace} never all arrived: {received:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The one span named `name` in `spans`.
    fn named<'a>(spans: &'a [Received], name: &str) -> &'a Received {
        let found: Vec<_> = spans.iter().filter(|span| span.name == name).collect();
        assert!(!found.is_empty(), "no {name} span in {spans:#?}");
        found[0]
    }

    #[tokio::test]
    async fn one_submit_is_one_trace_across_api_worker_and_notifier() {
        let env = Env::new();
        let (collector, spans) = receiver().await;
        let vars = [
            ("CMDBUS_OTLP_ENDPOINT", collector.as_str()),
            // Exported within a tenth of a second of their end, not five.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ];
        let api = Proc::spawn(&env, "api", &vars);
        wait_ready(&reqwest::Client::new(), &api.base).await;
        let worker = Proc::spawn(&env, "worker", &vars);
        let notifier = Proc::spawn(&env, "notifier", &vars);
        wait_ready(&reqwest::Client::new(), &worker.base).await;
        wait_ready(&reqwest::Client::new(), &notifier.base).await;
        env.authorize().await;
        let ws_url = format!("{}/v1/ws", notifier.base.replacen("http", "ws", 1));
        let mut socket = WsClient::connect(&ws_url).await;
        socket.subscribe_all(None).await;

        // A caller's trace: the api's request span is its child, and everything else the command's.
        let parent = traceparent();
        let view = submit(
            &api.base,
            json!({"type": "demo.echo", "payload": {"traced": true}}),
            Some(&parent),
        )
        .await;
        let id = id_of(&view);
        socket
            .collect_until(T, |view| {
                view["id"] == json!(id) && view["status"] == "success"
            })
            .await
            .expect("pushed to the end");
        let names = ["request", "submit", "claim", "handle", "finish", "push"];
        let received = wait_spans(&spans, TRACE_ID, &names).await;
        let request = named(&received, "request");
        let submitted = named(&received, "submit");
        assert_eq!(request.role, "api");
        assert_eq!(
            request.parent_id, CALLER_SPAN,
            "the caller's span is the request's parent"
        );
        assert_eq!(submitted.role, "api");
        assert_eq!(submitted.parent_id, request.span_id);
        assert_eq!(
            submitted.attribute("command.id"),
            Some(id.to_string().as_str())
        );
        for step in ["claim", "handle", "finish"] {
            let span = named(&received, step);
            assert_eq!(span.role, "worker", "{span:?}");
            assert_eq!(
                span.parent_id, submitted.span_id,
                "{step} is the submit's child: {span:?}"
            );
            assert_eq!(
                span.attribute("command.id"),
                Some(id.to_string().as_str()),
                "{span:?}"
            );
            assert_eq!(
                span.attribute("command.type"),
                Some("demo.echo"),
                "{span:?}"
            );
            assert_eq!(span.attribute("command.attempt"), Some("1"), "{span:?}");
        }
        let pushes: Vec<_> = received.iter().filter(|span| span.name == "push").collect();
        for push in &pushes {
            assert_eq!(push.role, "notifier", "{push:?}");
            assert_eq!(push.parent_id, submitted.span_id, "{push:?}");
            assert_eq!(push.attribute("command.id"), Some(id.to_string().as_str()));
        }

        // No caller's trace: the api starts one, and the worker joins it.
        let view = submit(&api.base, json!({"type": "demo.noop"}), None).await;
        let id = id_of(&view);
        wait_finished(&api.base, id).await;
        let deadline = tokio::time::Instant::now() + T;
        let (submitted, started) = loop {
            let all = spans.lock().expect("spans").clone();
            let submitted = all.iter().find(|span| {
                span.name == "submit" && span.attribute("command.id") == Some(&id.to_string())
            });
            if let Some(submitted) = submitted {
                let started = of_trace(&spans, &submitted.trace_id);
                if started.iter().any(|span| span.name == "finish") {
                    break (submitted.clone(), started);
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no trace for {id}: {all:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_ne!(submitted.trace_id, TRACE_ID);
        let request = named(&started, "request");
        assert_eq!(request.parent_id, "", "the api's request span is the root");
        assert_eq!(named(&started, "claim").parent_id, submitted.span_id);
        assert_eq!(named(&started, "finish").parent_id, submitted.span_id);

        drop((api, worker, notifier));
        env.teardown(&cmdbus::builtin_registry().names())
            .await
            .expect("teardown");
    }
}
