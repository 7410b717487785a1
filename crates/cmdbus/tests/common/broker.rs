//! A broker handle of the test's own, for tests that publish, count or drain the queues of their
//! namespace directly.

use cmdbus_bus::{Broker, BusConfig};
use cmdbus_domain::{Lane, Names};
use std::time::Duration;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{AMQP_URL, Env};

/// A broker handle of the test's own, on the environment's namespace.
pub struct TestBroker {
    pub broker: Broker,
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl TestBroker {
    pub async fn connect(env: &Env) -> Self {
        Self::connect_with(env, cmdbus_bus::QueueType::Classic).await
    }

    pub async fn connect_with(env: &Env, queue_type: cmdbus_bus::QueueType) -> Self {
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();
        let broker = Broker::start(
            BusConfig {
                url: AMQP_URL.to_owned(),
                names: Names::new(env.namespace.clone()),
                connection_name: "cmdbus test".to_owned(),
                partitions: cmdbus::Config::defaults().partitions,
                queue_type,
            },
            stop.clone(),
            &tracker,
        )
        .expect("broker");
        assert!(broker.wait_connected(Duration::from_secs(30)).await);
        Self {
            broker,
            stop,
            tracker,
        }
    }

    pub fn queue(&self, kind: &str, lane: Lane) -> String {
        self.broker.names().command_queue(kind, lane)
    }

    /// Waits until `queue` holds `depth` ready messages (the broker's own count).
    pub async fn wait_depth(&self, queue: &str, depth: u32) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let now = self.broker.queue_depth(queue).await.expect("queue depth");
            if now == depth {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{queue} holds {now}, not {depth}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await; // polling the broker's count
        }
    }

    pub async fn close(self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}
