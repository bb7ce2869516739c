//! One WebSocket connection: a task that owns the socket. It authenticates, then
//! reads frames and answers them, while a writer task drains the connection's bounded
//! outbound queue (shared with the hub, which fans messages into it) and sends
//! heartbeat pings. The connection ends on close, token expiry (4401), a flood of
//! frames of any kind, pings included (4429), a frame the protocol refuses (1002,
//! 1007, 1009: [`super::read_error`]), falling behind (the hub kicks it, and so does
//! a reply that finds the queue full), a dependency failing at connect (1013) or
//! server shutdown (1001). However it ends, its socket is released within about
//! [`WRITER_CLOSE_TIMEOUT`] plus [`CLOSE_ANSWER_TIMEOUT`]: a client that stopped reading
//! cannot hold it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use chat_protocol::http::User;
use chat_protocol::ws::{ClientFrame, ServerFrame};
use chat_protocol::{ConversationId, ErrorCode, MessageId, UserId, close};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;
use uuid::Uuid;

use super::read_error::close_for_read_error;
use super::{Admission, Close, GatewaySettings, GatewayState};
use crate::auth::AccessGrant;
use crate::error::{AppError, AppResult};
use crate::history::{ReplaySink, Replayed};
use crate::hub::{Outbound, encode, encode_event, encode_message};
use crate::listener::SocketReset;
use crate::send::Sent;
use crate::store::Replay;

/// How long a replayed frame may wait for room in the connection's own queue.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the writer may take to send what is queued and the close frame once the
/// connection ends; then it is stopped and the socket reset.
const WRITER_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a closed connection reads on for the client's answer to its close.
const CLOSE_ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

type Sink = SplitSink<WebSocket, WsMessage>;
type Stream = SplitStream<WebSocket>;

pub async fn run(
    gateway: GatewayState,
    socket: WebSocket,
    admission: Admission,
    reset: SocketReset,
) {
    let (mut sink, mut stream) = socket.split();
    let mut budget = FrameBudget::new(&gateway.settings);
    let grant = match admission {
        Admission::ForeignOrigin => {
            return close_now(&mut sink, close::POLICY, "origin not allowed").await;
        }
        Admission::BadToken => {
            return close_now(
                &mut sink,
                close::UNAUTHENTICATED,
                "invalid or expired token",
            )
            .await;
        }
        Admission::Authenticated(grant) => grant,
        Admission::AwaitAuth => match authenticate(&gateway, &mut stream, &mut budget).await {
            Ok(grant) => grant,
            Err((code, reason)) => return close_now(&mut sink, code, reason).await,
        },
    };
    let user = match load_user(&gateway, grant.user).await {
        Ok(user) => user,
        Err((code, reason)) => return close_now(&mut sink, code, reason).await,
    };
    let span =
        tracing::info_span!("connection", user = %grant.user, connection = tracing::field::Empty);
    let socket = Socket {
        sink,
        stream,
        reset,
    };
    serve(gateway, socket, budget, grant, user)
        .instrument(span)
        .await;
}

/// The authenticated user's profile; a dependency that fails here is not the
/// client's fault, so it is told to come back (1013), not that it is unauthenticated.
async fn load_user(gateway: &GatewayState, id: UserId) -> Result<User, Close> {
    match gateway.users.user(id).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err((close::UNAUTHENTICATED, "unknown user")),
        Err(error) => {
            tracing::warn!(%error, "cannot load the user at connect");
            Err((close::TRY_AGAIN_LATER, "the directory is unavailable"))
        }
    }
}

/// The two halves of an authenticated connection's WebSocket, and the way to reset
/// its TCP socket.
struct Socket {
    sink: Sink,
    stream: Stream,
    reset: SocketReset,
}

/// How a connection ended: the close to send, and whether the client had stopped
/// reading (its socket is then reset: the kernel would otherwise keep retrying the
/// unread data for minutes).
struct Ending {
    close: Close,
    fell_behind: bool,
}

impl From<Close> for Ending {
    fn from(close: Close) -> Ending {
        Ending {
            close,
            fell_behind: false,
        }
    }
}

/// Registers the connection, answers its frames until it ends, then closes it.
async fn serve(
    gateway: GatewayState,
    socket: Socket,
    budget: FrameBudget,
    grant: AccessGrant,
    user: User,
) {
    let Socket {
        sink,
        mut stream,
        reset,
    } = socket;
    // Count the connection before `ready`: once the client sees `ready`, closing
    // another of its connections must not make it look offline.
    let contacts = gateway.contacts(grant.user).await;
    let came_online = gateway
        .presence
        .connected(grant.user)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "presence unavailable at connect");
            false
        });

    let (queue, outbound) = mpsc::channel(gateway.settings.outbound_queue);
    let kick = Arc::new(Notify::new());
    let ready = ServerFrame::Ready {
        user,
        heartbeat_ms: gateway.settings.heartbeat_ms,
    };
    let _ = queue.try_send(encode(&ready));
    let id = gateway
        .hub
        .register(grant.user, queue.clone(), kick.clone());
    tracing::Span::current().record("connection", id);
    let (closer, close_rx) = oneshot::channel();
    let heartbeat = Duration::from_millis(u64::from(gateway.settings.heartbeat_ms));
    let mut writer =
        tokio::spawn(write_frames(sink, outbound, close_rx, heartbeat).in_current_span());

    let mut connection = Connection {
        gateway: gateway.clone(),
        user: grant.user,
        queue,
        kick: kick.clone(),
    };
    connection.announce_presence(&contacts, came_online).await;
    let ending = connection
        .read_frames(&mut stream, &kick, budget, grant)
        .await;
    let (code, reason) = ending.close;
    tracing::debug!(code, reason, fell_behind = ending.fell_behind, "closing");

    let _ = closer.send(ending.close);
    let closed_in_time = tokio::time::timeout(WRITER_CLOSE_TIMEOUT, &mut writer)
        .await
        .is_ok();
    if !closed_in_time {
        // A client that reads nothing holds the writer on a full socket: stop it.
        writer.abort();
        let _ = writer.await;
    }
    if ending.fell_behind || !closed_in_time {
        reset.reset_when_dropped();
    } else {
        // Read on until the client answers the close (or a second passes): dropping
        // a socket with unread frames in it resets the connection, and a flooding
        // client would then never see its close code.
        let _ = tokio::time::timeout(CLOSE_ANSWER_TIMEOUT, async {
            while let Some(Ok(_)) = stream.next().await {}
        })
        .await;
    }
    // Both halves gone: the socket is closed (or reset) now, whatever comes next.
    drop(stream);

    connection.went_offline().await;
    drop(connection);
    // Only now, with the close frame sent, does the connection stop counting: shutdown
    // waits for the count to reach zero before the runtime (and this task) is dropped.
    gateway.hub.unregister(grant.user, id);
}

impl GatewayState {
    /// Everyone who shares a conversation with `user`; empty (and logged) when the
    /// directory cannot say, so presence is late rather than the connection refused.
    async fn contacts(&self, user: UserId) -> Vec<UserId> {
        self.conversations
            .contacts(user)
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "contacts unavailable; presence is not exchanged");
                Vec::new()
            })
    }
}

/// Waits for the first frame, which must be a valid `auth`.
async fn authenticate(
    gateway: &GatewayState,
    stream: &mut Stream,
    budget: &mut FrameBudget,
) -> Result<AccessGrant, Close> {
    let deadline = tokio::time::Instant::now() + gateway.settings.auth_timeout;
    loop {
        let frame = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| (close::AUTH_TIMEOUT, "no auth frame in time"))?;
        match frame {
            Some(Ok(WsMessage::Text(text))) => {
                return match serde_json::from_str::<ClientFrame>(&text) {
                    Ok(ClientFrame::Auth { token }) => gateway
                        .tokens
                        .verify(&token)
                        .map_err(|_| (close::UNAUTHENTICATED, "invalid or expired token")),
                    _ => Err((close::UNAUTHENTICATED, "the first frame must be auth")),
                };
            }
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {
                if !budget.take() {
                    return Err((close::TOO_MANY_FRAMES, "too many frames"));
                }
            }
            Some(Ok(WsMessage::Binary(_))) => {
                return Err((close::UNAUTHENTICATED, "the first frame must be auth"));
            }
            Some(Err(error)) => return Err(close_for_read_error(&error)),
            Some(Ok(WsMessage::Close(_))) | None => {
                return Err((close::UNAUTHENTICATED, "closed before auth"));
            }
        }
    }
}

/// Sends the close frame and flushes it, for at most [`WRITER_CLOSE_TIMEOUT`]: a
/// client that does not read gets no longer than that to take it.
async fn close_now(sink: &mut Sink, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = tokio::time::timeout(WRITER_CLOSE_TIMEOUT, async {
        let _ = sink.send(WsMessage::Close(Some(frame))).await;
        let _ = sink.close().await;
    })
    .await;
}

/// Sends queued frames and heartbeat pings until told to close.
async fn write_frames(
    mut sink: Sink,
    mut outbound: mpsc::Receiver<Outbound>,
    mut close_rx: oneshot::Receiver<Close>,
    heartbeat: Duration,
) {
    let mut pings = tokio::time::interval(heartbeat);
    pings.tick().await;
    loop {
        tokio::select! {
            frame = outbound.recv() => {
                let Some(frame) = frame else {
                    // Every sender is gone because the reader ended: its close code
                    // is on the way (or already sent), so don't lose it in this race.
                    if let Ok((code, reason)) = (&mut close_rx).await {
                        close_now(&mut sink, code, reason).await;
                    }
                    return;
                };
                if sink.feed(WsMessage::Text(frame)).await.is_err() {
                    return;
                }
                // Batch whatever else is queued into one flush.
                if !feed_queued(&mut sink, &mut outbound).await || sink.flush().await.is_err() {
                    return;
                }
            }
            _ = pings.tick() => {
                if sink.send(WsMessage::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            reason = &mut close_rx => {
                // Frames already queued (an ack, `synced`) go out before the close.
                if !feed_queued(&mut sink, &mut outbound).await {
                    return;
                }
                if let Ok((code, reason)) = reason {
                    close_now(&mut sink, code, reason).await;
                }
                return;
            }
        }
    }
}

/// Feeds every frame already queued into the sink; false if the socket failed.
async fn feed_queued(sink: &mut Sink, outbound: &mut mpsc::Receiver<Outbound>) -> bool {
    while let Ok(frame) = outbound.try_recv() {
        if sink.feed(WsMessage::Text(frame)).await.is_err() {
            return false;
        }
    }
    true
}

/// A per-connection token bucket for frames of any kind, WebSocket pings and pongs
/// included: tungstenite answers every ping, so an uncounted ping flood would be
/// answered forever.
struct FrameBudget {
    tokens: f64,
    updated: Instant,
    rate_per_sec: f64,
    burst: f64,
}

impl FrameBudget {
    fn new(settings: &GatewaySettings) -> FrameBudget {
        FrameBudget {
            tokens: settings.frame_burst,
            updated: Instant::now(),
            rate_per_sec: settings.frames_per_sec,
            burst: settings.frame_burst,
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens
            + now.duration_since(self.updated).as_secs_f64() * self.rate_per_sec)
            .min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Clone)]
struct Connection {
    gateway: GatewayState,
    user: UserId,
    /// This connection's outbound queue (the hub holds another sender of it).
    queue: mpsc::Sender<Outbound>,
    /// Ends the connection when its queue is full: the client is not reading.
    kick: Arc<Notify>,
}

impl Connection {
    /// Reads and answers frames until the connection must end; returns the close.
    async fn read_frames(
        &mut self,
        stream: &mut Stream,
        kick: &Notify,
        mut budget: FrameBudget,
        grant: AccessGrant,
    ) -> Ending {
        let mut shutdown = self.gateway.shutdown.clone();
        let now_unix = jsonwebtoken::get_current_timestamp();
        let expiry = tokio::time::sleep(Duration::from_secs(
            grant.expires_at.saturating_sub(now_unix),
        ));
        tokio::pin!(expiry);
        // A `sync` may wait for history to catch up with the log before it replays,
        // so it runs beside the frames that follow it (sends are not held up behind
        // it). One at a time; dropping the set when the connection ends aborts it.
        let mut syncs = JoinSet::new();
        loop {
            let frame = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stopping| *stopping) => return (close::GOING_AWAY, "server shutting down").into(),
                _ = kick.notified() => {
                    metrics::counter!("chat_slow_readers_disconnected_total").increment(1);
                    return Ending {
                        close: (close::POLICY, "too slow: the connection fell behind"),
                        fell_behind: true,
                    };
                }
                _ = &mut expiry => return (close::UNAUTHENTICATED, "token expired").into(),
                frame = stream.next() => frame,
            };
            // tungstenite has refused frames over the size limit already.
            let frame = match frame {
                Some(Ok(WsMessage::Close(_))) | None => return (1000, "bye").into(),
                Some(Err(error)) => return close_for_read_error(&error).into(),
                Some(Ok(frame)) => frame,
            };
            if !budget.take() {
                return (close::TOO_MANY_FRAMES, "too many frames").into();
            }
            match frame {
                WsMessage::Text(text) => self.handle(&text, &mut syncs).await,
                WsMessage::Binary(_) => self.error(
                    ErrorCode::InvalidFrame,
                    "frames are JSON text, not binary",
                    None,
                ),
                // tungstenite answers pings itself.
                WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Close(_) => {}
            }
        }
    }

    async fn handle(&mut self, text: &str, syncs: &mut JoinSet<()>) {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(e) if e.is_data() => {
                return self.error(
                    ErrorCode::InvalidFrame,
                    &format!("not a valid frame: {e}"),
                    None,
                );
            }
            Err(e) => return self.error(ErrorCode::MalformedJson, &format!("not JSON: {e}"), None),
        };
        match frame {
            ClientFrame::Send {
                conversation_id,
                client_msg_id,
                body,
                reply_to,
            } => {
                let sent = self
                    .gateway
                    .sender
                    .send(self.user, conversation_id, client_msg_id, body, reply_to)
                    .await;
                self.acknowledge(sent, client_msg_id);
            }
            ClientFrame::Edit {
                conversation_id,
                message_id,
                client_msg_id,
                body,
            } => {
                let sent = self
                    .gateway
                    .sender
                    .edit(self.user, conversation_id, message_id, client_msg_id, body)
                    .await;
                self.acknowledge(sent, client_msg_id);
            }
            ClientFrame::Delete {
                conversation_id,
                message_id,
                client_msg_id,
            } => {
                let sent = self
                    .gateway
                    .sender
                    .delete(self.user, conversation_id, message_id, client_msg_id)
                    .await;
                self.acknowledge(sent, client_msg_id);
            }
            ClientFrame::React {
                conversation_id,
                message_id,
                client_msg_id,
                emoji,
                on,
            } => {
                let sent = self
                    .gateway
                    .sender
                    .react(
                        self.user,
                        conversation_id,
                        message_id,
                        client_msg_id,
                        emoji,
                        on,
                    )
                    .await;
                self.acknowledge(sent, client_msg_id);
            }
            ClientFrame::Typing { conversation_id } => self.typing(conversation_id).await,
            ClientFrame::Read {
                conversation_id,
                message_id,
            } => self.read(conversation_id, message_id).await,
            ClientFrame::Sync { since } => self.start_sync(since, syncs),
            ClientFrame::Ping => self.reply(&ServerFrame::Pong),
            ClientFrame::Auth { .. } => self.error(
                ErrorCode::AlreadyAuthenticated,
                "this connection is authenticated",
                None,
            ),
        }
    }

    fn acknowledge(&self, sent: AppResult<Sent>, client_msg_id: Uuid) {
        match sent {
            Ok(sent) => self.reply(&ack(&sent, client_msg_id)),
            Err(error) => self.refuse(&error, Some(client_msg_id)),
        }
    }

    async fn typing(&mut self, conversation_id: ConversationId) {
        let members = match self
            .gateway
            .members
            .authorize_member(conversation_id, self.user)
            .await
        {
            Ok(members) => members,
            Err(error) => return self.refuse(&error, None),
        };
        let others: Vec<UserId> = members
            .iter()
            .copied()
            .filter(|m| *m != self.user)
            .collect();
        let frame = ServerFrame::Typing {
            conversation_id,
            user_id: self.user,
        };
        self.gateway.events.publish(&others, encode(&frame)).await;
    }

    async fn read(&mut self, conversation_id: ConversationId, message_id: MessageId) {
        match self.mark_read(conversation_id, message_id).await {
            Ok(Some(members)) => {
                let frame = ServerFrame::Read {
                    conversation_id,
                    user_id: self.user,
                    message_id,
                };
                self.gateway.events.publish(&members, encode(&frame)).await;
            }
            Ok(None) => {}
            Err(error) => self.refuse(&error, None),
        }
    }

    /// Moves the read marker; returns the members to tell if it moved.
    async fn mark_read(
        &self,
        conversation_id: ConversationId,
        message_id: MessageId,
    ) -> Result<Option<Arc<[UserId]>>, AppError> {
        let members = self
            .gateway
            .members
            .authorize_member(conversation_id, self.user)
            .await?;
        if !self
            .gateway
            .history
            .is_message_of(conversation_id, message_id)
            .await?
        {
            return Err(AppError::NotFound("message"));
        }
        let moved = self
            .gateway
            .read_markers
            .mark_read(conversation_id, self.user, message_id)
            .await?;
        Ok(moved.then_some(members))
    }

    fn start_sync(&self, since: Option<MessageId>, syncs: &mut JoinSet<()>) {
        while syncs.try_join_next().is_some() {}
        if !syncs.is_empty() {
            return self.error(
                ErrorCode::SyncInProgress,
                "a sync is already running on this connection; wait for its synced",
                None,
            );
        }
        let connection = self.clone();
        syncs.spawn(async move { connection.sync(since).await }.in_current_span());
    }

    /// Replays every event after `since` in the user's conversations, in id order,
    /// then `synced`.
    async fn sync(&self, since: Option<MessageId>) {
        let Some(since) = since else {
            return self.reply(&ServerFrame::Synced { until: None });
        };
        let mut sink = QueueSink(self.queue.clone());
        match self
            .gateway
            .history
            .replay(self.user, since, &mut sink)
            .await
        {
            Ok(Replayed::Until(until)) => self.reply(&ServerFrame::Synced { until: Some(until) }),
            Ok(Replayed::Abandoned) => {}
            Err(error) => self.refuse(&error, None),
        }
    }

    /// Tells the contacts this user came online (if this is their first connection)
    /// and tells this connection which contacts are online.
    async fn announce_presence(&mut self, contacts: &[UserId], came_online: bool) {
        if came_online {
            let frame = ServerFrame::Presence {
                user_id: self.user,
                online: true,
            };
            self.gateway.events.publish(contacts, encode(&frame)).await;
        }
        match self.gateway.presence.online(contacts).await {
            Ok(online) => {
                for user_id in online {
                    self.reply(&ServerFrame::Presence {
                        user_id,
                        online: true,
                    });
                }
            }
            Err(error) => tracing::warn!(%error, "presence unavailable; contacts shown offline"),
        }
    }

    async fn went_offline(&mut self) {
        match self.gateway.presence.disconnected(self.user).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(%error, "presence unavailable at disconnect");
                return;
            }
        }
        let contacts = self.gateway.contacts(self.user).await;
        let frame = ServerFrame::Presence {
            user_id: self.user,
            online: false,
        };
        self.gateway.events.publish(&contacts, encode(&frame)).await;
    }

    /// Queues a frame for this connection. A full queue means the client is not
    /// reading: it is kicked, as the hub kicks it for a delivery.
    fn reply(&self, frame: &ServerFrame) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.queue.try_send(encode(frame)) {
            self.kick.notify_one();
        }
    }

    fn error(&self, code: ErrorCode, message: &str, client_msg_id: Option<Uuid>) {
        self.reply(&ServerFrame::Error {
            code,
            message: message.to_owned(),
            client_msg_id,
            retry_after_ms: None,
        });
    }

    fn refuse(&self, error: &AppError, client_msg_id: Option<Uuid>) {
        if let AppError::Internal(e) = error {
            tracing::error!(error = %e, "frame failed");
        }
        self.reply(&ServerFrame::Error {
            code: error.code(),
            message: error.to_string(),
            client_msg_id,
            retry_after_ms: error
                .retry_after()
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        });
    }
}

/// A replay into the connection's own queue: it waits for room (a replay may be
/// larger than the queue), but not forever.
struct QueueSink(mpsc::Sender<Outbound>);

#[async_trait::async_trait]
impl ReplaySink for QueueSink {
    async fn deliver(&mut self, step: &Replay) -> bool {
        let frame = match step {
            Replay::Message(message) => encode_message(message),
            Replay::Change(event) => encode_event(event),
        };
        matches!(
            tokio::time::timeout(REPLY_TIMEOUT, self.0.send(frame)).await,
            Ok(Ok(()))
        )
    }
}

fn ack(sent: &Sent, client_msg_id: Uuid) -> ServerFrame {
    ServerFrame::Ack {
        client_msg_id,
        message_id: sent.message_id(),
        conversation_id: sent.conversation_id(),
        event_id: sent.event_id(),
    }
}
