//! Schedules declared at startup from a JSON file (`CMDBUS_SCHEDULES=path`): each is upserted
//! by its tenant and name, so that a deployment's schedules live in its configuration and a
//! restart with a changed file changes them. JSON, because the api reads it already (TOML would
//! be a dependency for one file).

use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;
use uuid::Uuid;

use crate::schedules::check_recurrence;

/// The file: `{"schedules": [{"name": …, "type": …, "cron": …}, …]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleFile {
    schedules: Vec<Declared>,
}

/// One declared schedule: a `POST /v1/schedules` body with a name (required) and a tenant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Declared {
    /// Unique in its tenant: what the upsert matches.
    name: String,
    /// Whose commands it submits; `default` when absent.
    tenant: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Value,
    cron: String,
    timezone: Option<String>,
    missed: Option<String>,
}

/// Why the file was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleFileError {
    /// The file cannot be read.
    #[error("cannot read the schedules file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not the expected JSON.
    #[error("the schedules file {path} is not a schedules file: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Where and why.
        source: serde_json::Error,
    },
    /// A schedule in it is refused.
    #[error("schedule {name:?} in {path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// The schedule's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The database refused or could not be reached.
    #[error(transparent)]
    Store(#[from] cmdbus_store::StoreError),
}

/// Reads the file and upserts each schedule in it by tenant and name; answers how many. Every
/// schedule is checked (name, cron, time zone, policy) before any is written, so that a file
/// with one mistake changes nothing. The type need not be registered yet (a worker may register
/// it later): until it is, the schedule waits.
pub async fn declare_schedules(
    pool: &cmdbus_store::Db,
    path: &Path,
) -> Result<usize, ScheduleFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ScheduleFileError::Read {
        path: shown.clone(),
        source,
    })?;
    let file: ScheduleFile =
        serde_json::from_str(&text).map_err(|source| ScheduleFileError::Parse {
            path: shown.clone(),
            source,
        })?;
    let invalid = |name: &str, reason: String| ScheduleFileError::Invalid {
        path: shown.clone(),
        name: name.to_owned(),
        reason,
    };
    let mut checked = Vec::with_capacity(file.schedules.len());
    for declared in &file.schedules {
        for (field, value) in [
            ("name", Some(&declared.name)),
            ("tenant", declared.tenant.as_ref()),
            ("type", Some(&declared.kind)),
        ] {
            if let Some(value) = value {
                crate::fields::check_name(field, value)
                    .map_err(|error| invalid(&declared.name, error.to_string()))?;
            }
        }
        let (recurrence, missed) = check_recurrence(
            &declared.cron,
            declared.timezone.as_deref(),
            declared.missed.as_deref(),
        )
        .map_err(|error| invalid(&declared.name, error.to_string()))?;
        let next_run_at = recurrence
            .next_after(Utc::now())
            .ok_or_else(|| invalid(&declared.name, "its cron has no tick after now".to_owned()))?;
        checked.push((declared, missed, next_run_at));
    }
    let mut tx = pool.begin().await.map_err(cmdbus_store::StoreError::from)?;
    for (declared, missed, next_run_at) in &checked {
        let schedule = cmdbus_store::NewSchedule {
            id: Uuid::now_v7(),
            tenant: declared.tenant.as_deref().unwrap_or("default"),
            name: Some(&declared.name),
            kind: &declared.kind,
            payload: &declared.payload,
            cron: &declared.cron,
            timezone: declared.timezone.as_deref().unwrap_or("UTC"),
            missed: missed.as_str(),
            next_run_at: *next_run_at,
        };
        cmdbus_store::declare_schedule(&mut *tx, &schedule).await?;
    }
    tx.commit().await.map_err(cmdbus_store::StoreError::from)?;
    Ok(checked.len())
}
