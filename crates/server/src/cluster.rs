//! A node's place in a cluster (Redis configured). Every few seconds it renews its
//! node-id lease, which keeps its users' presence alive, and takes over the presence
//! of nodes whose lease lapsed: their users who are now offline everywhere are
//! announced offline to their contacts, by exactly one surviving node. If its own
//! lease had lapsed (Redis out of reach for a while), other nodes may have done that
//! to its users, so it counts its connections again and announces who is back.
//!
//! Two tasks: [`keep_node_alive`] starts as soon as the lease is taken (before the
//! rest of the node, so the lease never lapses while the node starts) and reports
//! presence changes on a channel; [`announce_presence_changes`] starts once the
//! directory and the events exist and tells the contacts.

use std::sync::Arc;

use chat_protocol::UserId;
use chat_protocol::ws::ServerFrame;
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, watch};

use crate::cache::redis::lease::{self, Renewal};
use crate::events::Events;
use crate::hub::{Hub, encode};
use crate::store::Conversations;

/// This node's lease.
pub struct Lease {
    pub conn: ConnectionManager,
    pub prefix: String,
    pub node_id: u16,
    /// The lease's token; a configured node id has a fixed one.
    pub token: String,
}

/// Users whose presence changed without a connection of theirs opening or closing
/// here. At most two a renewal period, so the channel needs no bound.
#[derive(Debug)]
pub struct PresenceChange {
    pub users: Vec<UserId>,
    pub online: bool,
}

pub type PresenceChanges = mpsc::UnboundedSender<PresenceChange>;

/// Runs until shutdown, renewing the lease and reporting presence changes.
pub async fn keep_node_alive(
    lease: Lease,
    hub: Arc<Hub>,
    changes: PresenceChanges,
    mut shutdown: watch::Receiver<bool>,
) {
    // The lease was just taken (or renewed) at start, so the first round waits a period.
    let period = lease::LEASE_RENEWAL;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if let Some(back) = renew(&lease, &hub).await {
            let _ = changes.send(PresenceChange {
                users: back,
                online: true,
            });
        }
        match lease::reap_dead_nodes(&lease.conn, &lease.prefix).await {
            Ok(gone) if !gone.is_empty() => {
                let _ = changes.send(PresenceChange {
                    users: gone,
                    online: false,
                });
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not take over dead nodes' presence"),
        }
    }
}

/// Renews the lease; returns the users back online if it had lapsed and was retaken.
async fn renew(lease: &Lease, hub: &Hub) -> Option<Vec<UserId>> {
    let Lease {
        conn,
        prefix,
        node_id,
        token,
    } = lease;
    match lease::renew_node_lease(conn, prefix, *node_id, token).await {
        Ok(Renewal::Renewed) => None,
        Ok(Renewal::Retaken) => {
            tracing::warn!(
                node_id,
                "the node lease had lapsed; counting connections again"
            );
            match lease::restore_presence(conn, prefix, *node_id, &hub.local_users()).await {
                Ok(back) => Some(back),
                Err(error) => {
                    tracing::warn!(%error, "could not restore presence");
                    None
                }
            }
        }
        Ok(Renewal::Lost) => {
            tracing::error!(
                node_id,
                "another node holds this node id; message ids may collide"
            );
            None
        }
        Err(error) => {
            tracing::warn!(%error, "could not renew the node lease");
            None
        }
    }
}

/// Tells the contacts of each changed user, until shutdown.
pub async fn announce_presence_changes(
    mut changes: mpsc::UnboundedReceiver<PresenceChange>,
    conversations: Arc<dyn Conversations>,
    events: Arc<dyn Events>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let change = tokio::select! {
            change = changes.recv() => change,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let Some(PresenceChange { users, online }) = change else {
            return;
        };
        for user_id in users {
            match conversations.contacts(user_id).await {
                Ok(contacts) => {
                    let frame = ServerFrame::Presence { user_id, online };
                    events.publish(&contacts, encode(&frame)).await;
                }
                Err(error) => tracing::warn!(%error, %user_id, "cannot announce presence"),
            }
        }
    }
}
