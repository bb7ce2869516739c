//! Ephemeral events between the nodes of a cluster over Redis pub/sub: every node
//! publishes to one channel and delivers what it hears to its own connections. An
//! event published while Redis is down is lost, which is acceptable for typing and
//! presence; the subscriber reconnects by itself.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::ws::Utf8Bytes;
use chat_protocol::{ConversationId, UserId};
use futures::StreamExt;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::Events;
use crate::hub::Hub;
use crate::membership::Members;

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Envelope {
    Frame { users: Vec<UserId>, frame: String },
    MembersChanged { conversation: ConversationId },
}

pub struct RedisEvents {
    conn: ConnectionManager,
    channel: String,
}

impl RedisEvents {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            channel: format!("{prefix}events"),
        }
    }

    async fn send(&self, envelope: &Envelope) {
        let Ok(payload) = serde_json::to_string(envelope) else {
            return;
        };
        let mut conn = self.conn.clone();
        if let Err(error) = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async::<i64>(&mut conn)
            .await
        {
            tracing::warn!(%error, "an ephemeral event was lost: Redis is unavailable");
        }
    }
}

#[async_trait]
impl Events for RedisEvents {
    async fn publish(&self, users: &[UserId], frame: Utf8Bytes) {
        if users.is_empty() {
            return;
        }
        self.send(&Envelope::Frame {
            users: users.to_vec(),
            frame: frame.as_str().to_owned(),
        })
        .await;
    }

    async fn members_changed(&self, conversation: ConversationId) {
        self.send(&Envelope::MembersChanged { conversation }).await;
    }
}

/// Listens on the channel and hands each event to this node; reconnects after
/// errors until shutdown. While disconnected, cached member lists may be stale, so
/// they are all dropped on every (re)subscription.
pub async fn listen(
    client: redis::Client,
    prefix: String,
    hub: Arc<Hub>,
    members: Arc<Members>,
    mut shutdown: watch::Receiver<bool>,
) {
    let channel = format!("{prefix}events");
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    members.clear();
                    let mut messages = pubsub.on_message();
                    loop {
                        let message = tokio::select! {
                            message = messages.next() => message,
                            _ = shutdown.wait_for(|stop| *stop) => return,
                        };
                        let Some(message) = message else { break };
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        match serde_json::from_str::<Envelope>(&payload) {
                            Ok(Envelope::Frame { users, frame }) => {
                                hub.deliver(&users, &Utf8Bytes::from(frame), None);
                            }
                            Ok(Envelope::MembersChanged { conversation }) => {
                                members.invalidate(conversation)
                            }
                            Err(error) => tracing::warn!(%error, "ignoring an unreadable event"),
                        }
                    }
                    tracing::warn!("lost the Redis event subscription; reconnecting");
                }
                Err(error) => tracing::warn!(%error, "subscribing to Redis events failed"),
            },
            Err(error) => tracing::warn!(%error, "Redis is unavailable for events"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
