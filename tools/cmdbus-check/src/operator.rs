//! What operators do during a run: random cancels of recent commands and replays of failed
//! ones (keyed ones included, so a replay of an old command of a key meets its successors).

use reqwest::StatusCode;
use std::{sync::atomic::Ordering, time::Duration};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    procs::NodeRole,
    shared::{Shared, pick},
};

/// Cancels recent commands and replays failed ones (keyed ones half the time) at random moments
/// until `stop`.
pub(crate) async fn operate(shared: &Shared, mut rng: fastrand::Rng, stop: CancellationToken) {
    loop {
        let pause = Duration::from_millis(rng.u64(300..1_500));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        let Some(api) = pick(&mut rng, &shared.cluster.members(Some(NodeRole::Api))) else {
            continue;
        };
        let cancel = rng.bool();
        let target = if cancel {
            let accepted = shared.lock_accepted();
            let recent = &accepted[accepted.len().saturating_sub(30)..];
            (!recent.is_empty()).then(|| recent[rng.usize(0..recent.len())])
        } else {
            // Half the replays are of keyed commands: a replay of an old command of a key
            // meets the key's later commands, which must not run beside it.
            let keyed = rng.bool();
            let failed: Vec<Uuid> = sqlx::query_scalar(
                "select id from commands
                 where status = 'fail' and (not $1 or ordering_key is not null) order by id",
            )
            .bind(keyed)
            .fetch_all(&shared.pool)
            .await
            .unwrap_or_default();
            (!failed.is_empty()).then(|| failed[rng.usize(0..failed.len())])
        };
        let Some(id) = target else { continue };
        let action = if cancel { "cancel" } else { "retry" };
        let answer = shared
            .http
            .post(format!(
                "http://127.0.0.1:{}/v1/commands/{id}/{action}",
                api.port
            ))
            .send()
            .await;
        if answer.is_ok_and(|response| response.status() == StatusCode::ACCEPTED) {
            let counter = if cancel {
                &shared.counts.cancels
            } else {
                &shared.counts.replays
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}
