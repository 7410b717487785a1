//! The library as files: what the server serves, the packed npm package, the React hooks
//! bundled into a page, and the README's page run as written.

use super::*;

#[tokio::test]
async fn the_server_serves_the_library_to_any_origin_with_caching_headers() {
    let app = TestApp::start().await;
    let http = reqwest::Client::new();
    for (path, file, content_type) in [
        (
            "/v1/client.js",
            "dist/client.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "/v1/client.d.ts",
            "dist/index.d.ts",
            "application/typescript; charset=utf-8",
        ),
    ] {
        let res = http
            .get(app.url(path))
            .header("origin", "https://another.example")
            .send()
            .await
            .expect("get the file");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let headers = res.headers().clone();
        let value = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            value("access-control-allow-origin").as_deref(),
            Some("*"),
            "{path}"
        );
        assert_eq!(
            value("content-type").as_deref(),
            Some(content_type),
            "{path}"
        );
        assert_eq!(
            value("cache-control").as_deref(),
            Some("public, max-age=300"),
            "{path}"
        );
        let etag = value("etag").expect("an ETag");
        let body = res.text().await.expect("body");
        let committed = std::fs::read_to_string(library_dir().join(file)).expect("the dist file");
        assert_eq!(body, committed, "{path} is the committed {file}");
        let again = http
            .get(app.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("revalidate");
        assert_eq!(
            again.status(),
            StatusCode::NOT_MODIFIED,
            "{path} with its ETag"
        );
    }
    // The routes that answer with data still refuse a foreign origin.
    let refused = http
        .get(app.url("/v1/commands"))
        .header("origin", "https://another.example")
        .send()
        .await
        .expect("list");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn the_packed_package_installs_into_a_page() {
    let scratch = std::env::temp_dir().join(format!("cmdbus-pack-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&scratch).expect("scratch directory");
    let packed = std::process::Command::new("npm")
        .args(["pack", "--json", "--pack-destination"])
        .arg(&scratch)
        .current_dir(library_dir())
        .output()
        .expect("npm pack runs");
    assert!(
        packed.status.success(),
        "{}",
        String::from_utf8_lossy(&packed.stderr)
    );
    let listing: Value = serde_json::from_slice(&packed.stdout).expect("npm pack --json");
    let files: Vec<&str> = listing[0]["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    for needed in [
        "package.json",
        "dist/client.js",
        "dist/index.d.ts",
        "src/index.js",
    ] {
        assert!(files.contains(&needed), "{needed} is packed: {files:?}");
    }
    let tarball = scratch.join(listing[0]["filename"].as_str().expect("filename"));
    std::fs::write(
        scratch.join("package.json"),
        r#"{"name":"page","private":true}"#,
    )
    .expect("page package.json");
    let installed = std::process::Command::new("npm")
        .args(["install", "--offline", "--no-audit", "--no-fund"])
        .arg(&tarball)
        .current_dir(&scratch)
        .output()
        .expect("npm install runs");
    assert!(
        installed.status.success(),
        "{}",
        String::from_utf8_lossy(&installed.stderr)
    );
    let package = scratch.join("node_modules/@cmdbus/client");
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(package.join("package.json")).expect("installed package.json"),
    )
    .expect("json");
    let entry = manifest["exports"]["."]["default"]
        .as_str()
        .expect("exports");
    let module = std::fs::read_to_string(package.join(entry)).expect("the entry module");
    assert!(
        package
            .join(manifest["types"].as_str().expect("types"))
            .is_file()
    );

    // The page serves the installed module itself and imports it from there.
    let (listener, origin) = PageServer::bind().await;
    let app = TestApp::start_tweaked(|config| config.http.allowed_origins = vec![origin]).await;
    let files = HashMap::from([("client.js".to_owned(), module)]);
    let page = PageServer::serve(listener, &app.base, "/files/client.js", files);
    let browser = Browser::launch(DESKTOP).await;
    open_page(&browser, &page.base).await;
    let id = submit_from_page(&browser, "demo.echo", json!({"hello": "package"})).await;
    let views = final_view_is_the_database_s(&browser, &app.base, id).await;
    assert_eq!(
        views.last().map(|v| v["result"].clone()),
        Some(json!({"hello": "package"}))
    );
    browser.close().await;
    app.stop().await;
    std::fs::remove_dir_all(&scratch).ok();
}

#[tokio::test]
async fn react_hooks_show_progress_and_the_final_result() {
    let scratch = std::env::temp_dir().join(format!("cmdbus-react-{}.js", Uuid::now_v7()));
    let bundled = std::process::Command::new(library_dir().join("../react/bundle.sh"))
        .arg(&scratch)
        .output()
        .expect("bundle.sh runs");
    assert!(
        bundled.status.success(),
        "{}",
        String::from_utf8_lossy(&bundled.stderr)
    );
    let bundle = std::fs::read_to_string(&scratch).expect("the bundle");
    std::fs::remove_file(&scratch).ok();

    let (listener, origin) = PageServer::bind().await;
    let app = TestApp::start_tweaked(|config| config.http.allowed_origins = vec![origin]).await;
    let html = format!(
        r#"<!doctype html><meta charset="utf-8"><title>react</title>
<body data-bus="{}"><div id="root"></div><script type="module" src="/files/page.js"></script></body>"#,
        app.base
    );
    let files = HashMap::from([("page.js".to_owned(), bundle)]);
    let page = PageServer::serve_html(listener, &app.base, html, files);
    let browser = Browser::launch(DESKTOP).await;
    open_page(&browser, &page.base).await;
    let id = submit_from_page(&browser, "demo.sleep", json!({"ms": 3000, "steps": 6})).await;

    // Sample the progress bar the hook renders until the command is done.
    let deadline = Instant::now() + T;
    let mut samples = Vec::new();
    let shown = loop {
        let shown = browser
            .js(
                r#"const el = document.querySelector('[data-testid="command"]');
                   return el && { status: el.dataset.status,
                     progress: Math.round(el.querySelector('progress').value * 100),
                     result: el.querySelector('[data-testid="result"]').textContent,
                     listed: document.querySelector(`li[data-id="${arguments[0]}"]`)?.dataset.status };"#,
                vec![json!(id)],
            )
            .await;
        if let Some(progress) = shown["progress"].as_u64() {
            samples.push(u32::try_from(progress).unwrap_or_default());
        }
        if shown["status"] == "success" && shown["listed"] == "success" {
            break shown;
        }
        assert!(
            Instant::now() < deadline,
            "no outcome in time; last {shown}"
        );
        tokio::time::sleep(POLL).await; // sampling interval, not synchronisation
    };
    let stored = app.wait_status(id, "success", T).await;
    let result: Value =
        serde_json::from_str(shown["result"].as_str().expect("text")).expect("json");
    assert_eq!(result, stored["result"], "the result PostgreSQL holds");
    assert_eq!(shown["progress"], json!(100));
    assert!(
        partial_values(&samples).len() >= 2,
        "the bar advanced while running: {samples:?}"
    );
    assert!(samples.windows(2).all(|w| w[0] <= w[1]), "{samples:?}");
    browser.close().await;
    app.stop().await;
}

/// The page of the README's "Use it from a browser", exactly as written there.
fn readme_page() -> String {
    let readme = std::fs::read_to_string(library_dir().join("../../README.md")).expect("README");
    let (_, after) = readme
        .split_once("<!-- the page: library::the_readme_page_runs_as_written")
        .expect("the README marks its page");
    let (_, block) = after.split_once("```html\n").expect("an html block");
    let (page, _) = block.split_once("```").expect("the block ends");
    page.to_owned()
}

#[tokio::test]
async fn the_readme_page_runs_as_written() {
    let html = readme_page();
    let lines = html.lines().filter(|line| !line.trim().is_empty()).count();
    assert!(
        lines < 15,
        "the README promises a page under 15 lines: {lines}"
    );
    let (listener, origin) = PageServer::bind().await;
    let app = TestApp::start_tweaked(|config| config.http.allowed_origins = vec![origin]).await;
    let html = html.replace("https://bus.example.com", &app.base);
    let page = PageServer::serve_html(listener, &app.base, html, HashMap::new());
    let browser = Browser::launch(DESKTOP).await;
    browser
        .client
        .goto(&page.base)
        .await
        .expect("load the page");
    let shown = wait_page(
        &browser,
        "the README page's result",
        "const out = document.querySelector('output').textContent;
         return out ? { out, bar: document.querySelector('progress').value } : null;",
        vec![],
    )
    .await;
    let id: Uuid = sqlx::query_scalar("select id from commands")
        .fetch_one(&app.pool)
        .await
        .expect("the one command");
    let stored = app.wait_status(id, "success", T).await;
    let result: Value = serde_json::from_str(shown["out"].as_str().expect("text")).expect("json");
    assert_eq!(
        result, stored["result"],
        "the page shows the result PostgreSQL holds"
    );
    assert_eq!(shown["bar"], json!(1), "the bar is full");
    browser.close().await;
    app.stop().await;
}
