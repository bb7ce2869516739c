//! The WebSocket protocol from the client side, with a receive timeout on every wait.
//! Frames a test is not waiting for are kept (not dropped), so an `ack` and its
//! `message` may arrive in either order and presence or typing noise never gets in
//! the way of the frame a test is looking for.

use std::collections::VecDeque;
use std::time::Duration;

use chat_protocol::http::Message;
use chat_protocol::ws::{ClientFrame, ServerFrame};
use chat_protocol::{ConversationId, MessageId};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite};
use uuid::Uuid;

use crate::server::Endpoint;
use crate::wait::{QUIET_PERIOD, RECEIVE_TIMEOUT};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What came off a socket.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // a test helper: frames are read one at a time
pub enum Event {
    Frame(ServerFrame),
    /// The server closed with this code (`None`: no close frame, the stream just ended).
    Closed(Option<u16>),
    TimedOut,
}

/// A client WebSocket with receive timeouts and a backlog of frames not yet asked for.
pub struct Ws {
    socket: Socket,
    backlog: VecDeque<ServerFrame>,
    closed: Option<Option<u16>>,
}

impl Ws {
    /// Opens `/api/v1/ws` without authenticating.
    pub async fn connect(endpoint: &Endpoint) -> Ws {
        Ws::connect_with_headers(endpoint, &[])
            .await
            .unwrap_or_else(|e| panic!("WebSocket upgrade failed: {e}"))
    }

    /// Opens `/api/v1/ws` with extra upgrade headers (`Origin`, `Authorization`).
    pub async fn connect_with_headers(
        endpoint: &Endpoint,
        headers: &[(&'static str, &str)],
    ) -> Result<Ws, tungstenite::Error> {
        let mut request = endpoint.ws_url().into_client_request()?;
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(*name, HeaderValue::from_str(value).expect("header value"));
        }
        let (socket, _) = timeout(RECEIVE_TIMEOUT, tokio_tungstenite::connect_async(request))
            .await
            .expect("the WebSocket upgrade timed out")?;
        Ok(Ws::from_socket(socket))
    }

    /// Opens `/api/v1/ws` over a TCP socket whose receive buffer is as small as the
    /// kernel allows, so that not reading it soon backs up into the server.
    pub async fn connect_with_tiny_receive_buffer(endpoint: &Endpoint) -> Ws {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .set_recv_buffer_size(1024)
            .expect("set the receive buffer size");
        let stream = socket
            .connect(endpoint.addr())
            .await
            .expect("connect to the server");
        let request = endpoint.ws_url().into_client_request().unwrap();
        let (socket, _) = timeout(
            RECEIVE_TIMEOUT,
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)),
        )
        .await
        .expect("the WebSocket upgrade timed out")
        .expect("WebSocket upgrade");
        Ws::from_socket(socket)
    }

    fn from_socket(socket: Socket) -> Ws {
        Ws {
            socket,
            backlog: VecDeque::new(),
            closed: None,
        }
    }

    /// Sends `auth` with this token and waits for `ready`.
    pub async fn authenticate(&mut self, token: &str) {
        self.send(&ClientFrame::Auth {
            token: token.to_owned(),
        })
        .await;
        self.wait_for("ready", |f| {
            matches!(f, ServerFrame::Ready { .. }).then_some(())
        })
        .await;
    }

    /// The TCP stream under the WebSocket (to watch it without reading it).
    pub fn tcp(&self) -> &TcpStream {
        match self.socket.get_ref() {
            MaybeTlsStream::Plain(tcp) => tcp,
            _ => panic!("test sockets are plain TCP"),
        }
    }

    pub fn into_socket(self) -> Socket {
        self.socket
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        let text = serde_json::to_string(frame).expect("encode a frame");
        self.send_raw(tungstenite::Message::text(text)).await;
    }

    /// Sends a frame; `false` if the connection is already gone.
    pub async fn try_send(&mut self, frame: &ClientFrame) -> bool {
        let text = serde_json::to_string(frame).expect("encode a frame");
        matches!(
            timeout(
                RECEIVE_TIMEOUT,
                self.socket.send(tungstenite::Message::text(text))
            )
            .await,
            Ok(Ok(()))
        )
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send_raw(tungstenite::Message::text(text)).await;
    }

    pub async fn send_raw(&mut self, message: tungstenite::Message) {
        timeout(RECEIVE_TIMEOUT, self.socket.send(message))
            .await
            .expect("sending a frame timed out")
            .expect("send a frame");
    }

    /// Sends a message and returns its client_msg_id without waiting for the ack.
    pub async fn send_message(&mut self, conversation: ConversationId, body: &str) -> Uuid {
        let client_msg_id = Uuid::new_v4();
        self.send(&ClientFrame::Send {
            conversation_id: conversation,
            client_msg_id,
            body: body.to_owned(),
            reply_to: None,
        })
        .await;
        client_msg_id
    }

    /// Sends a message and waits for its ack; returns the message id.
    pub async fn send_and_ack(&mut self, conversation: ConversationId, body: &str) -> MessageId {
        let client_msg_id = self.send_message(conversation, body).await;
        self.ack_of(client_msg_id).await
    }

    /// Waits for the ack of `client_msg_id` (failing on an error frame for it).
    pub async fn ack_of(&mut self, client_msg_id: Uuid) -> MessageId {
        self.wait_for(&format!("ack of {client_msg_id}"), |f| match f {
            ServerFrame::Ack {
                client_msg_id: id,
                message_id,
                ..
            } if *id == client_msg_id => Some(Ok(*message_id)),
            ServerFrame::Error {
                client_msg_id: Some(id),
                code,
                ..
            } if *id == client_msg_id => Some(Err(*code)),
            _ => None,
        })
        .await
        .unwrap_or_else(|code| panic!("send {client_msg_id} was refused with `{code}`"))
    }

    /// The next `message` frame with this id.
    pub async fn message_with_id(&mut self, id: MessageId) -> Message {
        self.wait_for(&format!("message {id}"), |f| match f {
            ServerFrame::Message { message } if message.id == id => Some(message.clone()),
            _ => None,
        })
        .await
    }

    /// The next `error` frame: (code, client_msg_id).
    pub async fn next_error(&mut self) -> (String, Option<Uuid>) {
        self.wait_for("an error frame", |f| match f {
            ServerFrame::Error {
                code,
                client_msg_id,
                ..
            } => Some((code.to_string(), *client_msg_id)),
            _ => None,
        })
        .await
    }

    /// Sends an application `ping` and waits for `pong`: proves the connection is open
    /// and the server has handled every frame sent before it.
    pub async fn round_trip(&mut self) {
        self.send(&ClientFrame::Ping).await;
        self.wait_for("pong", |f| matches!(f, ServerFrame::Pong).then_some(()))
            .await;
    }

    /// The next event off the wire (not the backlog), answering WebSocket pings.
    pub async fn next_event(&mut self, within: Duration) -> Event {
        if let Some(code) = self.closed {
            return Event::Closed(code);
        }
        let deadline = Instant::now() + within;
        loop {
            let next = match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return Event::TimedOut,
                Ok(next) => next,
            };
            match next {
                Some(Ok(tungstenite::Message::Text(text))) => {
                    let frame: ServerFrame =
                        serde_json::from_str(text.as_str()).unwrap_or_else(|e| {
                            panic!("the server sent an unknown frame ({e}): {text}")
                        });
                    return Event::Frame(frame);
                }
                Some(Ok(tungstenite::Message::Close(frame))) => {
                    let code = frame.as_ref().map(close_code);
                    self.closed = Some(code);
                    return Event::Closed(code);
                }
                Some(Ok(tungstenite::Message::Binary(bytes))) => {
                    panic!("the server sent a binary frame of {} bytes", bytes.len())
                }
                Some(Ok(_)) => continue, // ping/pong: tungstenite answers pings itself
                Some(Err(_)) | None => {
                    self.closed = Some(None);
                    return Event::Closed(None);
                }
            }
        }
    }

    /// The next frame in arrival order (backlog first); fails on close or timeout.
    pub async fn recv(&mut self) -> ServerFrame {
        if let Some(frame) = self.backlog.pop_front() {
            return frame;
        }
        match self.next_event(RECEIVE_TIMEOUT).await {
            Event::Frame(frame) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Waits for the first frame `pick` accepts, keeping the others for later; fails
    /// if the connection closes or nothing matches within [`RECEIVE_TIMEOUT`].
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&ServerFrame) -> Option<T>,
    ) -> T {
        if let Some(pos) = self.backlog.iter().position(|f| pick(f).is_some()) {
            let frame = self.backlog.remove(pos).unwrap();
            return pick(&frame).unwrap();
        }
        let deadline = Instant::now() + RECEIVE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await {
                Event::Frame(frame) => match pick(&frame) {
                    Some(found) => return found,
                    None => self.backlog.push_back(frame),
                },
                Event::Closed(code) => panic!(
                    "the connection closed with {code:?} while waiting for {what}; frames kept: {:?}",
                    self.backlog
                ),
                Event::TimedOut => panic!(
                    "no {what} within {RECEIVE_TIMEOUT:?}; frames received meanwhile: {:?}",
                    self.backlog
                ),
            }
        }
    }

    /// Asserts that no frame `unwanted` accepts arrives (or is already kept) within
    /// [`QUIET_PERIOD`]; closing is fine.
    pub async fn assert_no(&mut self, what: &str, unwanted: impl Fn(&ServerFrame) -> bool) {
        if let Some(frame) = self.backlog.iter().find(|f| unwanted(f)) {
            panic!("unexpected {what}: {frame:?}");
        }
        let deadline = Instant::now() + QUIET_PERIOD;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await {
                Event::Frame(frame) if unwanted(&frame) => panic!("unexpected {what}: {frame:?}"),
                Event::Frame(frame) => self.backlog.push_back(frame),
                Event::Closed(_) | Event::TimedOut => return,
            }
        }
    }

    /// Asserts no `message` frame arrives.
    pub async fn assert_no_message(&mut self) {
        self.assert_no("message", |f| matches!(f, ServerFrame::Message { .. }))
            .await;
    }

    /// Waits for the server to close the connection (skipping any frames) and returns
    /// the close code; `None` when the stream ended without a close frame.
    pub async fn expect_close(&mut self) -> Option<u16> {
        let deadline = Instant::now() + RECEIVE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await {
                Event::Frame(frame) => self.backlog.push_back(frame),
                Event::Closed(code) => return code,
                Event::TimedOut => panic!(
                    "the server did not close the connection within {RECEIVE_TIMEOUT:?}; frames: {:?}",
                    self.backlog
                ),
            }
        }
    }

    /// Frames received but not yet asked for.
    pub fn backlog(&self) -> &VecDeque<ServerFrame> {
        &self.backlog
    }

    /// Drops what has been kept so far (for example presence noise before a check).
    pub fn clear_backlog(&mut self) {
        self.backlog.clear();
    }

    pub async fn close(mut self) {
        let _ = timeout(Duration::from_secs(1), self.socket.close(None)).await;
    }
}

fn close_code(frame: &CloseFrame) -> u16 {
    u16::from(frame.code)
}
