//! Publishing. Command messages go out persistent and `mandatory` on the confirm channel and
//! count only on an ack with nothing returned; many publishes share the channel, so their confirms
//! are pipelined instead of costing a round trip each. Events and control messages go out on a
//! plain channel (`fanout`).

use cmdbus_domain::{
    CommandMessage, Lane, Routing, TraceParent, partition_of, trace::TRACEPARENT_HEADER,
};
use lapin::{
    BasicProperties, Confirmation,
    options::BasicPublishOptions,
    types::{AMQPValue, FieldTable},
};
use std::time::Duration;

use crate::{Broker, BusError, Session, topology};

/// How long a publish may wait for its confirm before it counts as failed.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// A command message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Command type: the routing key.
    pub kind: String,
    /// Id and generation.
    pub message: CommandMessage,
    /// AMQP priority, 0..=9.
    pub priority: u8,
    /// Carried as a header for operators; partition routing comes later.
    pub ordering_key: Option<String>,
    /// Which queue of the type it goes to.
    pub lane: Lane,
    /// The ordered partition (commands with an ordering key), instead of the main queue.
    pub partition: Option<u16>,
    /// The command's trace context, carried as the `traceparent` header: the worker's spans
    /// join the trace the command was submitted in.
    pub traceparent: Option<TraceParent>,
}

impl Outgoing {
    /// Its routing key in the commands exchange.
    fn routing_key(&self) -> String {
        match self.partition {
            Some(partition) if self.lane == Lane::Main => {
                topology::partition_key(&self.kind, partition)
            }
            _ => topology::routing_key(&self.kind, self.lane),
        }
    }
}

/// Where a message goes: exchange, routing key and extra headers.
struct Route {
    exchange: String,
    routing_key: String,
    headers: Vec<(&'static str, AMQPValue)>,
}

impl Broker {
    /// The message of a row (its routing, from `CommandRow::routing`), with the ordered
    /// partition of its key in this broker's topology.
    pub fn outgoing(&self, routing: Routing) -> Outgoing {
        Outgoing {
            partition: routing
                .ordering_key
                .as_deref()
                .map(|key| partition_of(key, self.partitions())),
            kind: routing.kind,
            message: routing.message,
            priority: routing.priority,
            ordering_key: routing.ordering_key,
            lane: routing.lane,
            traceparent: routing.traceparent,
        }
    }

    /// Publishes one command message and waits for its confirm.
    pub async fn publish_command(&self, outgoing: &Outgoing) -> Result<(), BusError> {
        let mut results = self.publish_commands(std::slice::from_ref(outgoing)).await;
        results.pop().unwrap_or(Err(BusError::Unavailable))
    }

    /// Publishes many command messages back to back, then waits for all their confirms.
    /// One result per message, in order.
    pub async fn publish_commands(&self, batch: &[Outgoing]) -> Vec<Result<(), BusError>> {
        let mut routed = Vec::with_capacity(batch.len());
        for outgoing in batch {
            let route = Route {
                exchange: self.names().commands_exchange(),
                routing_key: outgoing.routing_key(),
                headers: Vec::new(),
            };
            routed.push((outgoing, route));
        }
        self.publish_confirmed(routed).await
    }

    /// Publishes a delivered message again, unchanged but for `headers`, into the delay tier of
    /// `delay_ms`, keeping its routing key: when the tier's TTL runs out it is dead-lettered
    /// back to the very queue it came from (a partition stays a partition, a lane a lane).
    /// Waits for the confirm.
    pub async fn publish_delayed(
        &self,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
        headers: &[(&str, AMQPValue)],
        delay_ms: u32,
    ) -> Result<(), BusError> {
        let session = self.session().ok_or(BusError::Unavailable)?;
        let mut table = properties.headers().clone().unwrap_or_default();
        for (name, value) in headers {
            table.insert((*name).into(), value.clone());
        }
        table.insert(
            topology::DELAY_HEADER.into(),
            AMQPValue::LongString(delay_ms.to_string().into()),
        );
        let confirm = publish_raw(
            &session,
            &self.names().retry_exchange(),
            routing_key,
            body,
            properties.with_headers(table),
        )
        .await?;
        settle(&session, confirm).await
    }

    /// Parks a command message in an exception lane of its type.
    pub async fn park(&self, outgoing: &Outgoing, lane: Lane) -> Result<(), BusError> {
        let route = Route {
            exchange: self.names().exceptions_exchange(),
            routing_key: topology::routing_key(&outgoing.kind, lane),
            headers: Vec::new(),
        };
        let mut results = self.publish_confirmed(vec![(outgoing, route)]).await;
        results.pop().unwrap_or(Err(BusError::Unavailable))
    }

    async fn publish_confirmed(&self, batch: Vec<(&Outgoing, Route)>) -> Vec<Result<(), BusError>> {
        let Some(session) = self.session() else {
            return batch.iter().map(|_| Err(BusError::Unavailable)).collect();
        };
        // Send everything first, then wait: the confirms arrive pipelined.
        let mut pending = Vec::with_capacity(batch.len());
        for (outgoing, route) in &batch {
            pending.push(send(&session, outgoing, route).await);
        }
        let mut results = Vec::with_capacity(pending.len());
        for sent in pending {
            results.push(match sent {
                Ok(confirm) => settle(&session, confirm).await,
                Err(error) => Err(error),
            });
        }
        results
    }
}

/// The trace context a command message carries (its `traceparent` header), as a consumer reads
/// it; `None` for a message without one, or with one that does not read.
pub fn traceparent_of(properties: &BasicProperties) -> Option<TraceParent> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(TRACEPARENT_HEADER)? {
        AMQPValue::LongString(text) => {
            TraceParent::parse(&String::from_utf8_lossy(text.as_bytes()))
        }
        _ => None,
    }
}

/// What the broker said about one published message.
async fn settle(session: &Session, confirm: lapin::PublisherConfirm) -> Result<(), BusError> {
    match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
        Err(_) => Err(BusError::Timeout),
        Ok(Err(error)) => Err(session.fail(error)),
        Ok(Ok(Confirmation::Ack(None))) => Ok(()),
        Ok(Ok(Confirmation::Ack(Some(_)))) => Err(BusError::Unroutable),
        Ok(Ok(Confirmation::Nack(_))) => Err(BusError::Nacked),
        // The publisher channel is always in confirm mode; anything else is a bug.
        Ok(Ok(Confirmation::NotRequested)) => Err(BusError::Nacked),
    }
}

async fn send(
    session: &Session,
    outgoing: &Outgoing,
    route: &Route,
) -> Result<lapin::PublisherConfirm, BusError> {
    let body = serde_json::to_vec(&outgoing.message)?;
    let mut headers = FieldTable::default();
    headers.insert(
        "x-cmdbus-generation".into(),
        AMQPValue::LongInt(outgoing.message.generation),
    );
    if let Some(key) = &outgoing.ordering_key {
        headers.insert(
            "x-cmdbus-ordering-key".into(),
            AMQPValue::LongString(key.as_str().into()),
        );
    }
    if let Some(parent) = &outgoing.traceparent {
        headers.insert(
            TRACEPARENT_HEADER.into(),
            AMQPValue::LongString(parent.to_string().into()),
        );
    }
    for (name, value) in &route.headers {
        headers.insert((*name).into(), value.clone());
    }
    let properties = BasicProperties::default()
        .with_delivery_mode(2) // persistent: survives a broker restart
        .with_content_type("application/json".into())
        .with_message_id(outgoing.message.id.to_string().into())
        .with_priority(outgoing.priority)
        .with_type(outgoing.kind.as_str().into())
        .with_headers(headers);
    publish_raw(
        session,
        &route.exchange,
        &route.routing_key,
        &body,
        properties,
    )
    .await
}

/// Publishes on the confirm channel, `mandatory`: an unroutable message must come back, not
/// vanish.
async fn publish_raw(
    session: &Session,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<lapin::PublisherConfirm, BusError> {
    session
        .publisher
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                immediate: false,
            },
            body,
            properties,
        )
        .await
        .map_err(|error| session.fail(error))
}
