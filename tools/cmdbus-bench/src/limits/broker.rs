//! RabbitMQ's limit for cmdbus's command messages: persistent publishes with publisher confirms
//! (pipelined in windows) into one durable classic priority queue, consumed at the same time with
//! one ack per message — what the api and the workers do per command. The queue is private to
//! the measurement and deleted afterwards.

use anyhow::Context as _;
use futures_util::StreamExt as _;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable},
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use uuid::Uuid;

use crate::cpu::{Accounting, Usage};

/// Consumer prefetch: enough that acks in flight never starve the consumer.
const MIN_PREFETCH: usize = 32;

/// What one window size achieved.
#[derive(Debug)]
pub(crate) struct BrokerLimit {
    pub(crate) window: usize,
    /// Messages published and confirmed per second.
    pub(crate) published: f64,
    /// Messages delivered and acked per second.
    pub(crate) consumed: f64,
    pub(crate) usage: Usage,
}

impl BrokerLimit {
    /// What the broker sustains: a queue that grows is not a rate it can keep.
    pub(crate) fn sustained(&self) -> f64 {
        self.published.min(self.consumed)
    }
}

/// Measures each window size for `duration`.
pub(crate) async fn measure(
    amqp_url: &str,
    windows: &[usize],
    duration: Duration,
    accounting: &Accounting,
) -> anyhow::Result<Vec<BrokerLimit>> {
    let connection = Connection::connect(
        amqp_url,
        ConnectionProperties::default().with_connection_name("cmdbus-bench limits".into()),
    )
    .await
    .context("cannot connect to RabbitMQ")?;
    let queue = format!("cmdbus-bench.limits.{}", std::process::id());
    let admin = connection.create_channel().await?;
    let mut results = Vec::new();
    let mut outcome = Ok(());
    for &window in windows {
        match measure_window(&connection, &admin, &queue, window, duration, accounting).await {
            Ok(limit) => results.push(limit),
            Err(error) => {
                outcome = Err(error);
                break;
            }
        }
    }
    // Deleted whatever happened above; a failed delete is worth saying, not failing for.
    if let Err(error) = admin
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
    {
        eprintln!("cannot delete the queue {queue}: {error}");
    }
    let _ = connection.close(200, "done".into()).await;
    outcome.map(|()| results)
}

async fn measure_window(
    connection: &Connection,
    admin: &Channel,
    queue: &str,
    window: usize,
    duration: Duration,
    accounting: &Accounting,
) -> anyhow::Result<BrokerLimit> {
    // Like a classic command queue of cmdbus: durable, with priorities. Purged between windows.
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(9));
    admin
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await
        .context("cannot declare the measurement queue")?;
    admin.queue_purge(queue.into(), Default::default()).await?;

    let consumer_channel = connection.create_channel().await?;
    let prefetch = u16::try_from(window.max(MIN_PREFETCH)).unwrap_or(u16::MAX);
    consumer_channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = consumer_channel
        .basic_consume(
            queue.into(),
            "cmdbus-bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let publisher = connection.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    let start = Instant::now();
    let end = start + duration;
    let consumed = Arc::new(AtomicU64::new(0));
    let consuming = tokio::spawn({
        let consumed = Arc::clone(&consumed);
        async move {
            while let Some(delivery) = consumer.next().await {
                let delivery = delivery?;
                delivery.acker.ack(BasicAckOptions::default()).await?;
                if Instant::now() < end {
                    consumed.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        }
    });
    let before = accounting.sample();
    let mut confirmed = 0u64;
    while Instant::now() < end {
        let mut pending = Vec::with_capacity(window);
        for _ in 0..window.max(1) {
            pending.push(publish(&publisher, queue).await?);
        }
        for confirm in pending {
            if matches!(confirm.await?, Confirmation::Ack(None)) {
                confirmed += 1;
            }
        }
    }
    let elapsed = start.elapsed();
    let usage = accounting.usage(&before, &accounting.sample());
    let _ = consumer_channel.close(200, "done".into()).await;
    let _ = publisher.close(200, "done".into()).await;
    consuming.abort();
    let consumed = consumed.load(Ordering::Relaxed);
    Ok(BrokerLimit {
        window,
        published: confirmed as f64 / elapsed.as_secs_f64(),
        consumed: consumed as f64 / duration.as_secs_f64(),
        usage,
    })
}

/// One message shaped like a command message: its id and generation as JSON, persistent,
/// `mandatory`, with cmdbus's properties and header.
async fn publish(publisher: &Channel, queue: &str) -> anyhow::Result<lapin::PublisherConfirm> {
    let id = Uuid::now_v7();
    let body = format!(r#"{{"id":"{id}","generation":0}}"#);
    let mut headers = FieldTable::default();
    headers.insert("x-cmdbus-generation".into(), AMQPValue::LongInt(0));
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(id.to_string().into())
        .with_priority(0)
        .with_type("demo.noop".into())
        .with_headers(headers);
    Ok(publisher
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions {
                mandatory: true,
                immediate: false,
            },
            body.as_bytes(),
            properties,
        )
        .await?)
}
