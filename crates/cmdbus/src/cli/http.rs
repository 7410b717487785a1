//! Every HTTP call the client makes, in one place: the routes of `docs/api.md`, with the
//! credential as `Authorization: Bearer`. A problem answer becomes [`CliError::Problem`];
//! anything that is not the api's JSON becomes [`CliError::Transport`], never a panic.

use super::CliError;
use reqwest::{Method, RequestBuilder, Response, StatusCode, header};
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// The server's api, as one credential sees it.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    client: reqwest::Client,
    /// The base URL without a trailing slash, e.g. `http://127.0.0.1:8080`.
    base: String,
    key: Option<String>,
}

/// What a long-poll answered.
#[derive(Debug)]
pub(crate) enum Polled {
    /// The command changed: its view.
    Changed(Value),
    /// Nothing changed within the wait.
    Unchanged,
}

impl Api {
    pub(crate) fn new(url: &str, key: Option<&str>) -> Result<Self, CliError> {
        let base = url.trim_end_matches('/').to_owned();
        if base.starts_with("https://") {
            return Err(CliError::Usage(format!(
                "{base}: this build speaks plain http only (no TLS stack); reach the server \
                 through a local proxy or tunnel"
            )));
        }
        if !base.starts_with("http://") {
            return Err(CliError::Usage(format!(
                "--url {base}: expected http://host:port"
            )));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|error| CliError::Transport(format!("cannot set up HTTP: {error}")))?;
        Ok(Self {
            client,
            base,
            key: key.map(str::to_owned),
        })
    }

    /// The WebSocket URL of `/v1/ws` on the same server.
    pub(crate) fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.base.trim_start_matches("http://"))
    }

    /// The credential, for the WebSocket upgrade.
    pub(crate) fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self
            .client
            .request(method, format!("{}{path}", self.base))
            // A request that hangs is a transport error; a long-poll adds its own wait.
            .timeout(Duration::from_secs(30));
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    pub(crate) async fn submit(
        &self,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Value, CliError> {
        let mut request = self.request(Method::POST, "/v1/commands").json(body);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        json(send(request).await?).await
    }

    pub(crate) async fn get(&self, id: Uuid) -> Result<Value, CliError> {
        json(send(self.request(Method::GET, &format!("/v1/commands/{id}"))).await?).await
    }

    /// `GET /v1/commands/{id}?wait=secs` with the version held: answers when it differs.
    pub(crate) async fn poll(&self, id: Uuid, version: i64, secs: u64) -> Result<Polled, CliError> {
        let request = self
            .request(Method::GET, &format!("/v1/commands/{id}?wait={secs}"))
            .header(header::IF_NONE_MATCH, format!("\"{version}\""))
            .timeout(Duration::from_secs(secs + 30));
        let response = send(request).await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(Polled::Unchanged);
        }
        json(response).await.map(Polled::Changed)
    }

    /// `GET /v1/changes`: the changes of `ids` (or of everything the credential reads) after
    /// `since`, waiting up to `secs` for one; `since` absent: the cursor of now.
    pub(crate) async fn changes(
        &self,
        since: Option<&str>,
        secs: u64,
        ids: &[Uuid],
    ) -> Result<Value, CliError> {
        let mut query = vec![("wait", secs.to_string())];
        if let Some(since) = since {
            query.push(("since", since.to_owned()));
        }
        if !ids.is_empty() {
            let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
            query.push(("ids", ids.join(",")));
        }
        let request = self
            .request(Method::GET, "/v1/changes")
            .query(&query)
            .timeout(Duration::from_secs(secs + 30));
        json(send(request).await?).await
    }

    pub(crate) async fn list(&self, filters: &[(&str, Option<String>)]) -> Result<Value, CliError> {
        let query: Vec<(&str, &str)> = filters
            .iter()
            .filter_map(|(name, value)| value.as_deref().map(|value| (*name, value)))
            .collect();
        json(send(self.request(Method::GET, "/v1/commands").query(&query)).await?).await
    }

    pub(crate) async fn retry(&self, id: Uuid) -> Result<Value, CliError> {
        json(send(self.request(Method::POST, &format!("/v1/commands/{id}/retry"))).await?).await
    }

    pub(crate) async fn retry_matching(&self, body: &Value) -> Result<Value, CliError> {
        json(send(self.request(Method::POST, "/v1/commands/retry").json(body)).await?).await
    }

    pub(crate) async fn cancel(&self, id: Uuid) -> Result<Value, CliError> {
        json(send(self.request(Method::POST, &format!("/v1/commands/{id}/cancel"))).await?).await
    }

    pub(crate) async fn mint_token(&self, body: &Value) -> Result<Value, CliError> {
        json(send(self.request(Method::POST, "/v1/tokens").json(body)).await?).await
    }
}

/// Sends `request`; a problem answer becomes its error.
async fn send(request: RequestBuilder) -> Result<Response, CliError> {
    let response = request.send().await.map_err(|error| {
        let url = error
            .url()
            .map(|url| url.as_str().to_owned())
            .unwrap_or_default();
        CliError::Transport(format!("cannot reach {url}: {}", without_url(&error)))
    })?;
    let status = response.status();
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(problem(&body).unwrap_or_else(|| {
        CliError::Transport(format!(
            "the server answered {status}, not a problem document: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        ))
    }))
}

/// The problem document (RFC 9457, with the api's `code`) in `body`, if it is one.
pub(crate) fn problem(body: &[u8]) -> Option<CliError> {
    let problem: Value = serde_json::from_slice(body).ok()?;
    let text = |name: &str, default: &str| problem[name].as_str().unwrap_or(default).to_owned();
    Some(CliError::Problem {
        title: text("title", "error"),
        code: problem["code"].as_str()?.to_owned(),
        detail: text("detail", ""),
    })
}

/// The JSON body of a successful answer.
async fn json(response: Response) -> Result<Value, CliError> {
    let status = response.status();
    response.json().await.map_err(|error| {
        CliError::Transport(format!(
            "the server answered {status} without a JSON body: {}",
            without_url(&error)
        ))
    })
}

/// reqwest's message and its causes, without the URL it repeats.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(cause) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.is_empty() {
        text = error.to_string();
    }
    text
}
