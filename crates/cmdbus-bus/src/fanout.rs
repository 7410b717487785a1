//! The fanout exchanges: notifications every process hears (state changes on `events`, requests
//! to workers on `control`), published unconfirmed on the session's plain channel and consumed
//! through an exclusive, auto-delete queue per listener. PostgreSQL holds every fact they carry,
//! so a lost one costs latency, never correctness. The change feed (`cmdbus-feed`) and the
//! worker's lease follow them through `Broker::follow_fanout`.

use cmdbus_domain::{Control, Event};
use futures_util::StreamExt;
use lapin::{
    BasicProperties,
    options::{BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};
use tokio_util::sync::CancellationToken;

use crate::{Broker, BusError, Session};

/// What following a fanout exchange reports.
#[derive(Debug)]
pub enum FanoutEvent<'a> {
    /// A fresh queue was bound (first, or again after the broker was away: what was published
    /// in between was missed).
    Bound,
    /// A message's body.
    Message(&'a [u8]),
}

impl Broker {
    /// Tells every worker something (cancel a running command). Not confirmed: the heartbeat
    /// carries the same request a little later should this be lost.
    pub async fn publish_control(&self, control: &Control) -> Result<(), BusError> {
        let properties = BasicProperties::default().with_content_type("application/json".into());
        self.notify(
            self.names().control_exchange(),
            &serde_json::to_vec(control)?,
            properties,
        )
        .await
    }

    /// Publishes a notification to a fanout exchange on the plain (unconfirmed) channel.
    async fn notify(
        &self,
        exchange: String,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BusError> {
        let session = self.session().ok_or(BusError::Unavailable)?;
        session
            .events
            .basic_publish(
                exchange.into(),
                "".into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .map_err(|error| session.fail(error))?;
        Ok(())
    }

    /// Announces state changes (`CommandRow::event` of each changed row): the one way the api
    /// and the worker publish them, in one events message (see [`Broker::publish_events`]).
    pub async fn announce(&self, events: impl IntoIterator<Item = Event>) {
        let events: Vec<Event> = events.into_iter().collect();
        self.publish_events(&events).await;
    }

    /// Publishes state changes to the events fanout, all in one message: one change as an
    /// `Event` object, several as an array of them. Not confirmed, and best effort (logged,
    /// never failing the caller): a lost event is healed from PostgreSQL, which holds every
    /// fact and which the notifier reads too.
    pub async fn publish_events(&self, events: &[Event]) {
        let body = match events {
            [] => return,
            [event] => serde_json::to_vec(event),
            events => serde_json::to_vec(events),
        };
        let published = match body {
            Ok(body) => {
                let properties =
                    BasicProperties::default().with_content_type("application/json".into());
                self.notify(self.names().events_exchange(), &body, properties)
                    .await
            }
            Err(error) => Err(error.into()),
        };
        if let Err(error) = published {
            tracing::debug!(%error, events = events.len(), "events not published");
        }
    }

    /// Follows a fanout exchange until `stop`, through every session: binds a fresh exclusive
    /// queue on each, and hands every message to `on_event`.
    pub async fn follow_fanout(
        &self,
        exchange: &str,
        stop: &CancellationToken,
        mut on_event: impl FnMut(FanoutEvent<'_>),
    ) {
        let mut sessions = self.watch_sessions();
        while !stop.is_cancelled() {
            let session = tokio::select! {
                _ = stop.cancelled() => return,
                session = sessions.wait_for(Option::is_some) => match session {
                    Ok(session) => session.clone(),
                    Err(_) => return,
                },
            };
            let Some(session) = session else { continue };
            // A broker that stops answering never replies to the binding: neither a stop nor
            // the session's end waits for it.
            let subscribed = tokio::select! {
                _ = stop.cancelled() => return,
                _ = session.closed() => None,
                subscribed = session.subscribe_fanout(exchange) => Some(subscribed),
            };
            match subscribed {
                None => {}
                Some(Ok(mut consumer)) => {
                    on_event(FanoutEvent::Bound);
                    loop {
                        let delivery = tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = session.closed() => break,
                            delivery = consumer.next() => delivery,
                        };
                        match delivery {
                            Some(Ok(delivery)) => on_event(FanoutEvent::Message(&delivery.data)),
                            Some(Err(error)) => {
                                tracing::warn!(%error, exchange, "fanout consumer failed");
                                break;
                            }
                            None => break,
                        }
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, exchange, "cannot bind to a fanout exchange")
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            }
        }
    }
}

impl Session {
    /// Binds a fresh exclusive, auto-delete queue to a fanout exchange and consumes it without
    /// acks: for notifications, whose facts PostgreSQL holds. The queue is bounded on the broker
    /// too, so a stalled process drops old notifications instead of growing without end.
    pub async fn subscribe_fanout(&self, exchange: &str) -> Result<lapin::Consumer, BusError> {
        let channel = self.open_channel().await?;
        let mut arguments = FieldTable::default();
        arguments.insert("x-max-length".into(), AMQPValue::LongUInt(100_000));
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            )
            .await?;
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?)
    }
}
