//! A node's place in a cluster (Redis configured). Every few seconds it renews its
//! node-id lease, which keeps its users' presence alive, and takes over the presence
//! of nodes whose lease lapsed: their users who are now offline everywhere are
//! announced offline to their contacts, by exactly one surviving node. If its own
//! lease had lapsed (Redis out of reach for a while), other nodes may have done that
//! to its users, so it counts its connections again and announces who is back.

use std::sync::{Arc, OnceLock};

use chat_protocol::UserId;
use chat_protocol::ws::ServerFrame;
use redis::aio::ConnectionManager;
use tokio::sync::watch;

use crate::cache::redis::{self as cache_redis, Renewal};
use crate::events::{Events, encode};
use crate::gateway::hub::Hub;
use crate::store::Directory;

/// This node's lease.
pub struct Lease {
    pub conn: ConnectionManager,
    pub prefix: String,
    pub node_id: u16,
    /// The lease's token; a configured node id has a fixed one.
    pub token: String,
}

/// Tells the contacts of users whose presence changed without a connection of theirs
/// opening or closing here.
pub struct Announcer {
    pub directory: Arc<dyn Directory>,
    pub events: Arc<dyn Events>,
}

impl Announcer {
    pub async fn announce(&self, users: &[UserId], online: bool) {
        for &user_id in users {
            match self.directory.contacts(user_id).await {
                Ok(contacts) => {
                    let frame = ServerFrame::Presence { user_id, online };
                    self.events.publish(&contacts, encode(&frame)).await;
                }
                Err(error) => tracing::warn!(%error, %user_id, "cannot announce presence"),
            }
        }
    }
}

/// Runs until shutdown, from before the node is ready, so its lease never lapses
/// while the rest starts. `offline` are users a crashed predecessor with this node id
/// left online. Announcements wait until `announcer` is set.
pub async fn keep_node_alive(
    lease: Lease,
    hub: Arc<Hub>,
    announcer: Arc<OnceLock<Announcer>>,
    mut offline: Vec<UserId>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Lease {
        conn,
        prefix,
        node_id,
        token,
    } = lease;
    // The lease was just taken (or renewed) at start, so the first round waits a period.
    let period = cache_redis::LEASE_RENEWAL;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        match cache_redis::renew_node_lease(&conn, &prefix, node_id, &token).await {
            Ok(Renewal::Renewed) => {}
            Ok(Renewal::Retaken) => {
                tracing::warn!(
                    node_id,
                    "the node lease had lapsed; counting connections again"
                );
                let local = hub.local_users();
                match cache_redis::restore_presence(&conn, &prefix, node_id, &local).await {
                    Ok(back) => {
                        if let Some(announcer) = announcer.get() {
                            announcer.announce(&back, true).await;
                        }
                    }
                    Err(error) => tracing::warn!(%error, "could not restore presence"),
                }
            }
            Ok(Renewal::Lost) => tracing::error!(
                node_id,
                "another node holds this node id; message ids may collide"
            ),
            Err(error) => tracing::warn!(%error, "could not renew the node lease"),
        }
        match cache_redis::reap_dead_nodes(&conn, &prefix).await {
            Ok(gone) => offline.extend(gone),
            Err(error) => tracing::warn!(%error, "could not take over dead nodes' presence"),
        }
        if let Some(announcer) = announcer.get() {
            announcer.announce(&offline, false).await;
            offline.clear();
        }
    }
}
