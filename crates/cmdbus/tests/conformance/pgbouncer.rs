//! cmdbus through PgBouncer in transaction mode: a private PgBouncer (Debian's package — 1.18 on
//! bookworm, which does not track prepared statements) on a free port in front of the local
//! PostgreSQL, with four server connections for every client. An api, a worker and a notifier
//! reach PostgreSQL only through it (`CMDBUS_PGBOUNCER=true`); the schema is migrated directly,
//! as docs/operations.md (PgBouncer) says to.

use crate::common::{
    Env, http_client, id_of,
    process::{Follower, Proc, finished, free_port},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::{
    cell::RefCell,
    collections::HashMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    str::FromStr,
    time::Duration,
};
use uuid::Uuid;

const T: Duration = Duration::from_secs(60);

/// Server connections PgBouncer opens to the test database, shared by every cmdbus process.
const SERVER_CONNECTIONS: i64 = 4;

/// A PgBouncer of the test's own: its ini and auth file in a directory of its own, listening on
/// a free port of 127.0.0.1, in front of 127.0.0.1:5432. Killed and removed on drop.
struct Bouncer {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Bouncer {
    fn start() -> Self {
        let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.exists())
            .expect(
                "pgbouncer is not installed: `apt-get install pgbouncer` (scripts/test.sh does)",
            );
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("cmdbus-pgbouncer-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("pgbouncer directory");
        // PgBouncer refuses to run as root: it then switches to `postgres`, which must read
        // its files.
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|output| output.stdout.trim_ascii() == b"0");
        let auth_file = dir.join("userlist.txt");
        std::fs::write(&auth_file, "\"postgres\" \"\"\n").expect("auth file");
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 * = host=127.0.0.1 port=5432\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {auth}\n\
                 pool_mode = transaction\n\
                 default_pool_size = {SERVER_CONNECTIONS}\n\
                 max_client_conn = 500\n\
                 server_reset_query = DEALLOCATE ALL\n\
                 server_reset_query_always = 1\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 {user}",
                auth = auth_file.display(),
                user = if as_root { "user = postgres\n" } else { "" },
            ),
        )
        .expect("pgbouncer.ini");
        if as_root {
            use std::os::unix::fs::PermissionsExt as _;
            for path in [&dir, &ini, &auth_file] {
                let mode = if path == &dir { 0o755 } else { 0o644 };
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .expect("permissions");
            }
        }
        let log = std::fs::File::create(dir.join("pgbouncer.log")).expect("log file");
        let child = Command::new(binary)
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("pgbouncer starts");
        Self { child, dir, port }
    }

    /// `database` reached through this PgBouncer.
    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Waits until PgBouncer answers a query.
    async fn wait_up(&self, database: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let options = PgConnectOptions::from_str(&self.url(database))
                .expect("url")
                .statement_cache_capacity(0);
            let answered = match PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
            {
                Ok(pool) => {
                    let ok = sqlx::raw_sql("select 1").execute(&pool).await.is_ok();
                    pool.close().await;
                    ok
                }
                Err(_) => false,
            };
            if answered {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "pgbouncer never answered; see {}",
                self.dir.join("pgbouncer.log").display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await; // polling PgBouncer's listener
        }
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn database_name(env: &Env) -> String {
    env.database_url
        .rsplit('/')
        .next()
        .expect("database name")
        .to_owned()
}

#[tokio::test]
async fn commands_run_retry_cancel_and_are_pushed_through_pgbouncer_in_transaction_mode() {
    let env = Env::new();
    // Migrations hold a session-level advisory lock: they run against PostgreSQL directly.
    env.authorize().await;
    let database = database_name(&env);
    let bouncer = Bouncer::start();
    bouncer.wait_up(&database).await;
    let url = bouncer.url(&database);
    let through = [
        ("CMDBUS_DATABASE_URL", url.as_str()),
        ("CMDBUS_PGBOUNCER", "true"),
    ];
    let api = Proc::spawn(&env, "api", &through);
    let worker = Proc::spawn(&env, "worker", &through);
    let notifier = Proc::spawn(&env, "notifier", &through);
    let http = http_client();
    for process in [&api, &worker, &notifier] {
        crate::common::wait_ready(&http, &process.base).await;
    }
    let ws_url = format!("{}/v1/ws", notifier.base.replacen("http", "ws", 1));
    let mut client = Follower::subscribe(&ws_url, None).await;
    client.subscribed().await;

    let submit = |body: Value| {
        let (http, base) = (http.clone(), api.base.clone());
        async move {
            let response = http
                .post(format!("{base}/v1/commands"))
                .json(&body)
                .send()
                .await
                .expect("submit");
            assert_eq!(response.status(), StatusCode::ACCEPTED);
            id_of(&response.json().await.expect("view"))
        }
    };
    // Many at once, so that several clients share PgBouncer's few server connections.
    let echoes: Vec<Uuid> = futures_util::future::join_all(
        (0..40).map(|n| submit(json!({"type": "demo.echo", "payload": n}))),
    )
    .await;
    let ordered: Vec<Uuid> = {
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(submit(json!({"type": "demo.echo", "payload": n, "ordering_key": "k"})).await);
        }
        ids
    };
    let retried = submit(json!({"type": "demo.fail", "payload": {"times": 1}})).await;
    let cancelled =
        submit(json!({"type": "demo.sleep", "payload": {"ms": 60_000, "steps": 60}})).await;

    let views: RefCell<HashMap<Uuid, Value>> = RefCell::new(HashMap::new());
    let record = |view: &Value| {
        views.borrow_mut().insert(id_of(view), view.clone());
    };
    client
        .until(T, |view| {
            record(view);
            id_of(view) == cancelled && view["status"] == "running"
        })
        .await
        .expect("the long command is pushed as running");
    let response = http
        .post(format!("{}/v1/commands/{cancelled}/cancel", api.base))
        .send()
        .await
        .expect("cancel");
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let mut expected: Vec<Uuid> = echoes.iter().chain(&ordered).copied().collect();
    expected.extend([retried, cancelled]);
    let all_finished = |views: &HashMap<Uuid, Value>| {
        expected
            .iter()
            .all(|id| views.get(id).is_some_and(finished))
    };
    if !all_finished(&views.borrow()) {
        client
            .until(T, |view| {
                record(view);
                all_finished(&views.borrow())
            })
            .await
            .expect("every outcome is pushed");
    }
    let views = views.into_inner();
    for id in echoes.iter().chain(&ordered) {
        assert_eq!(views[id]["status"], "success", "{}", views[id]);
    }
    assert_eq!(views[&retried]["status"], "success", "{}", views[&retried]);
    assert_eq!(views[&retried]["attempt"], 2, "{}", views[&retried]);
    assert_eq!(
        views[&cancelled]["status"], "cancelled",
        "{}",
        views[&cancelled]
    );

    // What the browser was told is what PostgreSQL holds, and the key ran in submission order.
    let direct = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(
            PgConnectOptions::from_str(&env.database_url)
                .expect("url")
                .application_name("pgbouncer-test"),
        )
        .await
        .expect("direct connection");
    let rows: Vec<(Uuid, String, i64)> =
        sqlx::query_as("select id, status, version from commands where id = any($1)")
            .bind(&expected)
            .fetch_all(&direct)
            .await
            .expect("rows");
    assert_eq!(rows.len(), expected.len());
    for (id, status, version) in rows {
        assert_eq!(views[&id]["status"], status.as_str(), "{id}");
        assert_eq!(views[&id]["version"], version, "{id}");
    }
    let started: Vec<Uuid> = sqlx::query_scalar(
        "select id from commands where ordering_key = 'k' order by started_at, id",
    )
    .fetch_all(&direct)
    .await
    .expect("ordered rows");
    assert_eq!(
        started, ordered,
        "the key's commands ran in submission order"
    );
    // Three processes with pools of their own shared PgBouncer's few server connections.
    let backends: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity
         where datname = $1 and application_name <> 'pgbouncer-test'",
    )
    .bind(&database)
    .fetch_one(&direct)
    .await
    .expect("backends");
    assert!(
        backends <= SERVER_CONNECTIONS,
        "{backends} server connections"
    );
    direct.close().await;

    client.close().await;
    drop((api, worker, notifier));
    env.teardown(&cmdbus::builtin_registry().names())
        .await
        .expect("teardown");
}

#[tokio::test]
async fn through_pgbouncer_nothing_is_migrated_and_an_unmigrated_database_is_refused() {
    let env = Env::new();
    let database = database_name(&env);
    // An empty database, created directly.
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{}/postgres", crate::common::DATABASE_SERVER))
        .await
        .expect("admin connection");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "create database \"{database}\""
    )))
    .execute(&admin)
    .await
    .expect("create database");
    let bouncer = Bouncer::start();
    bouncer.wait_up(&database).await;
    let url = bouncer.url(&database);
    let run = |role: &'static str| {
        let url = url.clone();
        let vars = env.vars();
        async move {
            let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cmdbus"));
            command
                .arg(role)
                .envs(vars)
                .env("CMDBUS_DATABASE_URL", &url)
                .env("CMDBUS_PGBOUNCER", "true")
                .env("CMDBUS_LOG", "error")
                .env("CMDBUS_LISTEN", format!("127.0.0.1:{}", free_port()))
                .kill_on_drop(true)
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            tokio::time::timeout(T, command.output())
                .await
                .expect("exits on its own")
                .expect("runs")
        }
    };
    let migrate = run("migrate").await;
    assert!(!migrate.status.success());
    assert!(
        String::from_utf8_lossy(&migrate.stderr).contains("must reach PostgreSQL directly"),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let worker = run("worker").await;
    assert!(!worker.status.success());
    assert!(
        String::from_utf8_lossy(&worker.stderr).contains("run `cmdbus migrate`"),
        "{}",
        String::from_utf8_lossy(&worker.stderr)
    );
    let direct = PgPoolOptions::new()
        .max_connections(1)
        .connect(&env.database_url)
        .await
        .expect("direct connection");
    let untouched: bool = sqlx::query_scalar("select to_regclass('_sqlx_migrations') is null")
        .fetch_one(&direct)
        .await
        .expect("catalogue");
    assert!(untouched, "nothing was migrated through PgBouncer");
    direct.close().await;
    drop(bouncer);
    cmdbus_store::drop_database(&PgConnectOptions::from_str(&env.database_url).expect("url"))
        .await
        .expect("drop");
    admin.close().await;
}
