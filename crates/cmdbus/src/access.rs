//! Authentication settings, the development start (a key printed on loopback when none is
//! configured), and `cmdbus keys`: create, list and revoke API keys from the command line.

use anyhow::{Context as _, bail};
use clap::Subcommand;
use cmdbus_auth::{AuthConfig, Scopes};
use cmdbus_store::Db;
use std::{io::Write as _, net::SocketAddr, time::Duration};
use uuid::Uuid;

/// Who may call, and how much.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthSettings {
    /// Run without authentication: every request acts as tenant `default` with every scope.
    /// For development only; the log and the web UI say so.
    #[arg(long, env = "CMDBUS_OPEN", default_value_t = false, global = true)]
    pub open: bool,
    /// Secret (at least 32 bytes) that signs browser tokens, for backends that mint them
    /// offline as HS256 JWTs. Unset: a random secret kept in the database.
    #[arg(
        long,
        env = "CMDBUS_TOKEN_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub token_secret: Option<String>,
    /// Longest a browser token may live, in seconds.
    #[arg(
        long,
        env = "CMDBUS_TOKEN_MAX_TTL_SECS",
        default_value_t = 86_400,
        global = true
    )]
    pub token_max_ttl_secs: u64,
    /// Requests per second per key or token (0: unlimited).
    #[arg(long, env = "CMDBUS_RATE_LIMIT", default_value_t = 100, global = true)]
    pub rate_limit: u32,
    /// Requests a key may make at once above its rate.
    #[arg(long, env = "CMDBUS_RATE_BURST", default_value_t = 200, global = true)]
    pub rate_burst: u32,
    /// Long-polls one key or token holds open at once (0: unlimited).
    #[arg(
        long,
        env = "CMDBUS_MAX_LONG_POLLS_PER_KEY",
        default_value_t = 100,
        global = true
    )]
    pub max_long_polls_per_key: usize,
    /// WebSockets one tenant holds open at once, per process (0: unlimited).
    #[arg(
        long,
        env = "CMDBUS_MAX_SOCKETS_PER_TENANT",
        default_value_t = 1_000,
        global = true
    )]
    pub max_sockets_per_tenant: usize,
    /// Command ids one tenant's WebSockets follow at once, per process (0: unlimited).
    #[arg(
        long,
        env = "CMDBUS_MAX_IDS_PER_TENANT",
        default_value_t = 100_000,
        global = true
    )]
    pub max_ids_per_tenant: usize,
    /// Percent of each per-tenant cap (WebSockets, followed ids, unfinished commands) one
    /// browser token's subject (or id set) may hold.
    #[arg(
        long,
        env = "CMDBUS_SUBJECT_SHARE_PERCENT",
        default_value_t = 10,
        value_parser = clap::value_parser!(u8).range(0..=100),
        global = true
    )]
    pub subject_share_percent: u8,
    /// Percent of each per-tenant cap browser tokens can never take: kept for the tenant's API
    /// keys (the backend).
    #[arg(
        long,
        env = "CMDBUS_KEY_RESERVE_PERCENT",
        default_value_t = 20,
        value_parser = clap::value_parser!(u8).range(0..=100),
        global = true
    )]
    pub key_reserve_percent: u8,
    /// Failed authentications one client address may make per second (0: unlimited); past the
    /// burst, the address gets `429 too_many_failed_authentications` before any key lookup.
    #[arg(
        long,
        env = "CMDBUS_FAILED_AUTH_PER_ADDRESS",
        default_value_t = 10,
        global = true
    )]
    pub failed_auth_per_address: u32,
    /// Failed authentications one address may make at once above that rate.
    #[arg(
        long,
        env = "CMDBUS_FAILED_AUTH_BURST",
        default_value_t = 100,
        global = true
    )]
    pub failed_auth_burst: u32,
    /// Unfinished (scheduled, new, queue, running) commands one tenant may have (0: unlimited).
    #[arg(
        long,
        env = "CMDBUS_MAX_UNFINISHED_PER_TENANT",
        default_value_t = 100_000,
        global = true
    )]
    pub max_unfinished_per_tenant: i64,
    /// Milliseconds a key lookup is trusted: the most a revocation takes to reach a process.
    #[arg(
        long,
        env = "CMDBUS_KEY_CACHE_MS",
        default_value_t = 500,
        global = true
    )]
    pub key_cache_ms: u64,
    /// An API key (`cmdbus_` and 64 hex digits, e.g. `cmdbus_$(openssl rand -hex 32)`) recorded
    /// at start for tenant `default` with every scope, unless recorded (or revoked) before: how
    /// a deployment gets its first key without a shell. Never logged.
    #[arg(
        long,
        env = "CMDBUS_BOOTSTRAP_KEY",
        global = true,
        hide_env_values = true
    )]
    pub bootstrap_key: Option<String>,
    /// Bearer token (at least 16 bytes) that `/metrics` requires: the scraper's credential,
    /// apart from every tenant's keys. Unset: `/metrics` is open on a loopback listener
    /// (development) and closed on any other. Never logged.
    #[arg(
        long,
        env = "CMDBUS_METRICS_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// Register the demo handlers (demo.echo, demo.sleep, demo.fail, demo.noop, demo.add). Default: only
    /// when listening on loopback (development).
    #[arg(long, env = "CMDBUS_DEMO", global = true)]
    pub demo: Option<bool>,
}

impl AuthSettings {
    /// The authenticator's settings for a server listening on `listen`.
    pub(crate) fn auth_config(&self, listen: SocketAddr) -> anyhow::Result<AuthConfig> {
        let token_secret = match &self.token_secret {
            Some(secret) if secret.len() < 32 => {
                bail!("CMDBUS_TOKEN_SECRET must be at least 32 bytes")
            }
            secret => secret.as_ref().map(|secret| secret.as_bytes().to_vec()),
        };
        Ok(AuthConfig {
            open: self.open,
            token_secret,
            key_cache_ttl: Duration::from_millis(self.key_cache_ms),
            rate_per_second: self.rate_limit,
            rate_burst: self.rate_burst,
            max_long_polls_per_key: self.max_long_polls_per_key,
            max_sockets_per_tenant: self.max_sockets_per_tenant,
            max_ids_per_tenant: self.max_ids_per_tenant,
            shares: cmdbus_auth::Shares {
                subject_percent: self.subject_share_percent,
                key_reserve_percent: self.key_reserve_percent,
            },
            failed_auth_per_second: self.failed_auth_per_address,
            failed_auth_burst: self.failed_auth_burst,
            token_max_ttl: Duration::from_secs(self.token_max_ttl_secs.max(1)),
            development_keys: listen.ip().is_loopback(),
        })
    }

    /// Whether the demo handlers are registered.
    pub fn demo(&self, listen: SocketAddr) -> bool {
        self.demo.unwrap_or_else(|| listen.ip().is_loopback())
    }
}

/// Before serving: a server off loopback revokes every development key; an open server says so
/// loudly; a server without configured keys prints a fresh development key when it listens on
/// loopback (`mint_development_key`), and refuses to start anywhere else.
pub(crate) async fn check_access(
    pool: &Db,
    settings: &AuthSettings,
    address: SocketAddr,
    mint_development_key: bool,
) -> anyhow::Result<()> {
    // A development key was printed to whoever started a loopback server: it must not open a
    // server others can reach. Each process refuses it off loopback (`AuthConfig`); revoking it
    // here also closes it for the loopback processes of the same database.
    if !address.ip().is_loopback() {
        let revoked = cmdbus_store::revoke_development_keys(pool).await?;
        if revoked > 0 {
            tracing::warn!(%address, revoked, "development keys revoked: not a loopback address");
        }
    }
    if settings.open {
        tracing::warn!(
            %address,
            "cmdbus runs OPEN: no authentication, every caller acts as tenant `default` with \
             every scope (CMDBUS_OPEN)"
        );
        return Ok(());
    }
    if let Some(key) = &settings.bootstrap_key {
        record_bootstrap_key(pool, key).await?;
    }
    if cmdbus_store::count_configured_keys(pool).await? > 0 {
        return Ok(());
    }
    if !address.ip().is_loopback() {
        bail!(
            "no API keys are configured and {address} is not a loopback address: create one \
             with `cmdbus keys create --tenant <tenant> --scopes submit,read --name <name>`, \
             or pass --open (CMDBUS_OPEN=true) to run without authentication"
        );
    }
    if !mint_development_key {
        return Ok(());
    }
    // A development start replaces the key of the one before, so that exactly one is live.
    let mut tx = pool.begin().await?;
    cmdbus_store::revoke_development_keys(&mut *tx).await?;
    let (key, _) =
        cmdbus_auth::issue_key(&mut *tx, "default", "development", Scopes::all(), true).await?;
    tx.commit().await?;
    // Printed, not logged: logs never carry keys. Shown once; the next start makes another.
    // In one write, and a closed stdout is no reason to stop serving: `println!` writes the
    // message in pieces and panics when whoever read the key has already gone.
    let message = format!(
        "\n  cmdbus development mode: listening on loopback with no API keys configured.\n  \
         Development key (tenant `default`, every scope; replaced at the next start):\n\n    \
         {key}\n\n  Use it as `Authorization: Bearer <key>`, and paste it into the web UI at \
         http://{address}/\n\n"
    );
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_all(message.as_bytes())
        .and_then(|()| stdout.flush())
    {
        tracing::warn!(%error, "cannot print the development key");
    }
    Ok(())
}

/// Records the bootstrap key unless a key with its hash exists (live or revoked: a revoked
/// bootstrap key stays revoked).
async fn record_bootstrap_key(pool: &Db, key: &str) -> anyhow::Result<()> {
    if !cmdbus_auth::is_well_formed_key(key) {
        bail!(
            "CMDBUS_BOOTSTRAP_KEY must be `cmdbus_` and 64 hex digits (cmdbus_$(openssl rand -hex 32))"
        );
    }
    let hash = cmdbus_auth::hash_key(key);
    if cmdbus_store::find_key(pool, &hash).await?.is_some() {
        return Ok(());
    }
    let recorded = cmdbus_store::create_key(
        pool,
        &cmdbus_store::NewKey {
            id: Uuid::now_v7(),
            tenant: "default",
            name: "bootstrap",
            scopes: &Scopes::all().names(),
            secret_hash: &hash,
            prefix: cmdbus_auth::shown_prefix(key),
            development: false,
        },
    )
    .await;
    match recorded {
        Ok(record) => tracing::info!(key = %record.id, "bootstrap key recorded"),
        // Another process of the deployment recorded it at the same moment.
        Err(cmdbus_store::StoreError::Database(sqlx::Error::Database(db)))
            if db.code().as_deref() == Some("23505") => {}
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

/// `cmdbus keys …`.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Makes a key and prints it (shown this once; only its hash is stored).
    Create {
        /// The tenant whose commands the key reaches.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Comma-separated: submit, read, operate, admin.
        #[arg(long, default_value = "submit,read", value_delimiter = ',')]
        scopes: Vec<String>,
        /// What the key is for.
        #[arg(long)]
        name: String,
    },
    /// Lists keys (of one tenant, or all).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revokes a key: every process refuses it within the key cache time (500 ms).
    Revoke {
        /// The key's id, as `keys list` shows it.
        id: Uuid,
    },
}

/// Runs a `cmdbus keys` command against the database.
pub async fn run_keys(command: KeysCommand, pool: &Db) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            tenant,
            scopes,
            name,
        } => {
            let scopes = Scopes::parse(&scopes).map_err(anyhow::Error::msg)?;
            let (key, record) = cmdbus_auth::issue_key(pool, &tenant, &name, scopes, false)
                .await
                .context("cannot create the key")?;
            eprintln!(
                "created key {} ({}) for tenant {} with scopes {}; it is shown only now:",
                record.id,
                record.name,
                record.tenant,
                record.scopes.join(",")
            );
            println!("{key}");
        }
        KeysCommand::List { tenant } => {
            let keys = cmdbus_store::list_keys(pool, tenant.as_deref()).await?;
            println!(
                "{:<36}  {:<16}  {:<20}  {:<28}  {:<16}  state",
                "id", "tenant", "name", "scopes", "prefix"
            );
            for key in keys {
                let state = match key.revoked_at {
                    Some(at) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                    None if key.development => "live (development)".to_owned(),
                    None => "live".to_owned(),
                };
                println!(
                    "{:<36}  {:<16}  {:<20}  {:<28}  {:<16}  {state}",
                    key.id,
                    key.tenant,
                    key.name,
                    key.scopes.join(","),
                    key.prefix
                );
            }
        }
        KeysCommand::Revoke { id } => match cmdbus_store::revoke_key(pool, None, id).await? {
            Some(key) => eprintln!(
                "revoked key {} ({}) of tenant {}",
                key.id, key.name, key.tenant
            ),
            None => bail!("no live key {id}"),
        },
    }
    Ok(())
}
