//! Shared helpers of the integration suite: start the real `chat` binary on a random
//! port with a fresh data directory, sign users up over HTTP, and speak the WebSocket
//! protocol with receive timeouts, so each test reads as a short story.
//!
//! Every receive has a deadline: a missing frame fails the test in seconds instead of
//! hanging it. Frames a test is not waiting for are kept (not dropped), so an `ack` and
//! its `message` may arrive in either order and presence or typing noise never gets in
//! the way of the frame a test is looking for.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_protocol::http::{
    AuthResponse, Conversation, CreateConversation, ErrorBody, HistoryPage, Message, SendMessage,
    SignupRequest,
};
use chat_protocol::ws::{ClientFrame, ServerFrame};
use chat_protocol::{ConversationId, MessageId};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use reqwest::cookie::{CookieStore, Jar};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite};
use uuid::Uuid;

use crate::services::{self, Services};

/// How long any single expected event may take before the test fails.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to listen when checking that something does *not* arrive.
pub const QUIET_PERIOD: Duration = Duration::from_millis(400);

/// How long the server may take to print its URL.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the server may take to exit after SIGTERM.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// A password every test user shares; it satisfies the 8-character minimum.
pub const PASSWORD: &str = "correct horse battery";

/// Where the server currently listens. Shared by the server handle and every client
/// made from it, so clients follow the server across a restart (which gets a new port).
#[derive(Clone)]
pub struct Endpoint(Arc<Mutex<SocketAddr>>);

impl Endpoint {
    pub fn addr(&self) -> SocketAddr {
        *self.0.lock().unwrap()
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// `/api/v1{path}` on the server.
    pub fn api(&self, path: &str) -> String {
        self.http(&format!("/api/v1{path}"))
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/api/v1/ws", self.addr())
    }

    /// The server's own origin, which is allowed when no origins are configured.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr())
    }
}

/// A running `chat serve` process on a temporary data directory; killed on drop.
pub struct Server {
    child: Option<Child>,
    pub endpoint: Endpoint,
    env: Vec<(String, String)>,
    /// Holds `data/` (the server's data dir) and `server.log` (its output).
    root: tempfile::TempDir,
    starts: u32,
    /// PostgreSQL, Redis and the broker in distributed mode (see `services.rs`).
    pub services: Option<Arc<Services>>,
}

/// Environment every test server gets unless a test overrides it.
fn default_env() -> Vec<(String, String)> {
    [("CHAT_SIGNUPS_PER_MINUTE", "100000"), ("RUST_LOG", "info")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

impl Server {
    /// A server with the default configuration.
    pub async fn start() -> Server {
        Server::start_with(&[]).await
    }

    /// A server with these extra environment variables (they override the defaults).
    pub async fn start_with(env: &[(&str, &str)]) -> Server {
        let services = services::distributed().then(|| Arc::new(Services::start()));
        Server::start_on(services, env).await
    }

    /// A server on the given services (shared by the nodes of a cluster).
    pub async fn start_on(services: Option<Arc<Services>>, env: &[(&str, &str)]) -> Server {
        let mut all = default_env();
        if let Some(services) = &services {
            all.extend(services.env());
        }
        for (key, value) in env {
            all.retain(|(k, _)| k != key);
            all.push(((*key).to_owned(), (*value).to_owned()));
        }
        let root = tempfile::tempdir().expect("create a temp dir");
        std::fs::create_dir_all(root.path().join("data")).expect("create the data dir");
        let mut server = Server {
            child: None,
            endpoint: Endpoint(Arc::new(Mutex::new(SocketAddr::from(([127, 0, 0, 1], 0))))),
            env: all,
            root,
            starts: 0,
            services,
        };
        server.spawn().await;
        server
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("server.log")
    }

    /// Spawns the binary and waits until it prints `listening on http://…`.
    async fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the server log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(self.data_dir())
            .env_remove("CHAT_JWT_SECRET")
            .env_remove("CHAT_ALLOWED_ORIGINS")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn the chat binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let log_path = self.log_path();
        let start = self.starts;

        let found = timeout(STARTUP_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                append_log(&log_path, &format!("[stdout #{start}] {line}")).await;
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let addr = addr.trim_end_matches('/');
                    return addr.parse::<SocketAddr>().ok();
                }
            }
            None
        })
        .await;
        let addr = match found {
            Ok(Some(addr)) => addr,
            Ok(None) => panic!(
                "the server exited or printed no `listening on http://HOST:PORT` line; its log:\n{}",
                self.log_tail()
            ),
            Err(_) => panic!(
                "the server printed no `listening on` line within {STARTUP_TIMEOUT:?}; its log:\n{}",
                self.log_tail()
            ),
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                append_log(&log_path, &format!("[stdout #{start}] {line}")).await;
            }
        });
        *self.endpoint.0.lock().unwrap() = addr;
        self.child = Some(child);
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(|c| c.id())
            .expect("the server is running")
    }

    /// Sends SIGTERM and returns at once (the caller may watch its sockets close).
    pub fn send_sigterm(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit after a signal; kills it and fails if it hangs.
    pub async fn wait_for_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        match timeout(SHUTDOWN_TIMEOUT, child.wait()).await {
            Ok(status) => status.expect("wait for the server"),
            Err(_) => {
                let _ = child.kill().await;
                panic!(
                    "the server did not exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM; its log:\n{}",
                    self.log_tail()
                )
            }
        }
    }

    /// SIGTERM, wait for a clean exit, then start again on the same data dir.
    pub async fn restart(&mut self) {
        self.send_sigterm();
        let status = self.wait_for_exit().await;
        assert!(
            status.success(),
            "the server should exit cleanly on SIGTERM, got {status}; its log:\n{}",
            self.log_tail()
        );
        self.start_again().await;
    }

    /// Starts the server again on the same data dir after it exited.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        self.spawn().await;
    }

    /// Kills the process without warning (SIGKILL), then starts again on the same
    /// data dir: what a crash looks like.
    pub async fn crash_and_restart(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        child.kill().await.expect("kill the server");
        self.spawn().await;
    }

    /// A client with no token and its own cookie jar.
    pub fn anonymous(&self) -> Api {
        Api::new(self.endpoint.clone(), None)
    }

    /// Signs `username` up with [`PASSWORD`] and returns the signed-in user.
    pub async fn signup(&self, username: &str) -> TestUser {
        let api = self.anonymous();
        let reply = api
            .post(
                "/auth/signup",
                &SignupRequest {
                    username: username.to_owned(),
                    password: PASSWORD.to_owned(),
                    display_name: None,
                },
            )
            .await;
        let auth: AuthResponse = reply.expect(StatusCode::CREATED);
        TestUser {
            user: auth.user,
            api: api.with_token(&auth.access_token),
            token: auth.access_token,
        }
    }

    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let response = reqwest::get(self.endpoint.http(path))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status();
        (status, response.text().await.unwrap_or_default())
    }
}

async fn append_log(path: &Path, line: &str) {
    if let Ok(mut file) = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
    {
        let _ = file.write_all(format!("{line}\n").as_bytes()).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- server log ({}) ----\n{}",
                self.log_path().display(),
                self.log_tail()
            );
        }
    }
}

/// An HTTP answer, kept whole so a failing assertion can show it.
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub what: String,
}

impl Reply {
    /// Asserts the status and decodes the body.
    #[track_caller]
    pub fn expect<T: DeserializeOwned>(&self, status: StatusCode) -> T {
        assert_eq!(
            self.status, status,
            "{}: expected {status}, got {} with body {}",
            self.what, self.status, self.text
        );
        self.json()
    }

    #[track_caller]
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "{}: cannot decode {} body as {}: {e}\n{}",
                self.what,
                self.status,
                std::any::type_name::<T>(),
                self.text
            )
        })
    }

    /// Asserts a 2xx status.
    #[track_caller]
    pub fn expect_success(&self) {
        assert!(
            self.status.is_success(),
            "{}: expected success, got {} with body {}",
            self.what,
            self.status,
            self.text
        );
    }

    /// Asserts an error reply with this status and `error.code`.
    #[track_caller]
    pub fn expect_error(&self, status: StatusCode, code: &str) {
        assert_eq!(
            self.status, status,
            "{}: expected {status} `{code}`, got {} with body {}",
            self.what, self.status, self.text
        );
        let body: ErrorBody = self.json();
        assert_eq!(
            body.error.code.to_string(),
            code,
            "{}: wrong error code in {}",
            self.what,
            self.text
        );
        assert!(
            !body.error.message.is_empty(),
            "{}: the error should say what was wrong",
            self.what
        );
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP client with its own cookie jar and, optionally, a bearer token.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    jar: Arc<Jar>,
    endpoint: Endpoint,
    token: Option<String>,
}

impl Api {
    fn new(endpoint: Endpoint, token: Option<String>) -> Api {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("build the HTTP client");
        Api {
            http,
            jar,
            endpoint,
            token,
        }
    }

    /// The same client (same cookie jar) with another bearer token.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// The value of the refresh cookie the jar would send to `/api/v1/auth/refresh`.
    pub fn refresh_cookie(&self) -> Option<String> {
        let url = reqwest::Url::parse(&self.endpoint.api("/auth/refresh")).unwrap();
        let header = self.jar.cookies(&url)?;
        let header = header.to_str().ok()?.to_owned();
        header.split("; ").find_map(|pair| {
            pair.strip_prefix(&format!("{}=", chat_protocol::REFRESH_COOKIE))
                .map(str::to_owned)
        })
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, self.endpoint.api(path));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn send(&self, what: String, builder: reqwest::RequestBuilder) -> Reply {
        let response = builder
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        Reply {
            status,
            headers,
            text,
            what,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(
            format!("GET {path}"),
            self.request(reqwest::Method::GET, path),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &impl Serialize) -> Reply {
        self.send(
            format!("POST {path}"),
            self.request(reqwest::Method::POST, path).json(body),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(
            format!("DELETE {path}"),
            self.request(reqwest::Method::DELETE, path),
        )
        .await
    }

    /// `POST /auth/refresh` with the CSRF header and this jar's cookie.
    pub async fn refresh(&self) -> Reply {
        self.send(
            "POST /auth/refresh".into(),
            self.request(reqwest::Method::POST, "/auth/refresh")
                .header(chat_protocol::CSRF_HEADER, "1"),
        )
        .await
    }

    /// `POST /auth/refresh` with exactly this refresh token and no jar.
    pub async fn refresh_with_cookie(&self, refresh_token: &str) -> Reply {
        let bare = reqwest::Client::new();
        self.send(
            "POST /auth/refresh (explicit cookie)".into(),
            bare.post(self.endpoint.api("/auth/refresh"))
                .header(chat_protocol::CSRF_HEADER, "1")
                .header(
                    reqwest::header::COOKIE,
                    format!("{}={refresh_token}", chat_protocol::REFRESH_COOKIE),
                ),
        )
        .await
    }
}

/// A signed-up user: their profile, access token and HTTP client (with cookie jar).
pub struct TestUser {
    pub user: chat_protocol::http::User,
    pub token: String,
    pub api: Api,
}

impl TestUser {
    pub fn id(&self) -> chat_protocol::UserId {
        self.user.id
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.api.get(path).await
    }

    pub async fn post(&self, path: &str, body: &impl Serialize) -> Reply {
        self.api.post(path, body).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.api.delete(path).await
    }

    pub async fn direct_with(&self, other: &TestUser) -> Conversation {
        let reply = self
            .post(
                "/conversations",
                &CreateConversation::Direct {
                    user_id: other.id(),
                },
            )
            .await;
        reply.expect_success();
        reply.json()
    }

    pub async fn group_with(&self, title: &str, others: &[&TestUser]) -> Conversation {
        self.post(
            "/conversations",
            &CreateConversation::Group {
                title: title.to_owned(),
                member_ids: others.iter().map(|u| u.id()).collect(),
            },
        )
        .await
        .expect(StatusCode::CREATED)
    }

    pub async fn conversation(&self, id: ConversationId) -> Conversation {
        self.get(&format!("/conversations/{id}"))
            .await
            .expect(StatusCode::OK)
    }

    pub async fn conversations(&self) -> Vec<Conversation> {
        self.get("/conversations").await.expect(StatusCode::OK)
    }

    /// Sends over HTTP and returns the stored message.
    pub async fn send_http(&self, conversation: ConversationId, body: &str) -> Message {
        self.post(
            &format!("/conversations/{conversation}/messages"),
            &SendMessage {
                client_msg_id: Uuid::new_v4(),
                body: body.to_owned(),
            },
        )
        .await
        .expect(StatusCode::CREATED)
    }

    /// One page of history; `query` is the raw query string such as `limit=2&before=9`.
    pub async fn history_page(&self, conversation: ConversationId, query: &str) -> HistoryPage {
        self.get(&format!("/conversations/{conversation}/messages?{query}"))
            .await
            .expect(StatusCode::OK)
    }

    /// The newest page of history once it satisfies `ready` (history may lag the ack
    /// by a moment); fails after [`settle_timeout`].
    pub async fn history_when(
        &self,
        conversation: ConversationId,
        ready: impl Fn(&[Message]) -> bool,
    ) -> Vec<Message> {
        let deadline = Instant::now() + settle_timeout();
        loop {
            let page = self.history_page(conversation, "limit=100").await;
            if ready(&page.messages) {
                return page.messages;
            }
            if Instant::now() > deadline {
                panic!(
                    "history of {conversation} never reached the expected state; last page: {:?}",
                    page.messages
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The whole history of a conversation, newest first, page by page.
    pub async fn all_history(&self, conversation: ConversationId) -> Vec<Message> {
        let mut all: Vec<Message> = Vec::new();
        loop {
            let query = match all.last() {
                Some(oldest) => format!("limit=100&before={}", oldest.id),
                None => "limit=100".to_owned(),
            };
            let page = self.history_page(conversation, &query).await;
            all.extend(page.messages);
            if !page.has_more {
                return all;
            }
        }
    }

    /// History once every id in `ids` is in it (and nothing else is required).
    pub async fn history_containing(
        &self,
        conversation: ConversationId,
        ids: &[MessageId],
    ) -> Vec<Message> {
        self.history_when(conversation, |messages| {
            ids.iter().all(|id| messages.iter().any(|m| m.id == *id))
        })
        .await
    }

    /// A WebSocket that has sent `auth` and received `ready`.
    pub async fn connect(&self) -> Ws {
        let mut ws = Ws::connect(&self.api.endpoint).await;
        ws.send(&ClientFrame::Auth {
            token: self.token.clone(),
        })
        .await;
        let ready = ws
            .wait_for("ready", |f| match f {
                ServerFrame::Ready { user, .. } => Some(user.clone()),
                _ => None,
            })
            .await;
        assert_eq!(ready.id, self.id(), "ready names the wrong user");
        ws
    }
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What came off a socket.
#[derive(Debug)]
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

/// How long state that settles in the background (history, read markers) may take.
/// In distributed mode a restarted node's persister first rejoins its consumer
/// group, which waits for the old member's session to time out.
pub fn settle_timeout() -> Duration {
    if services::distributed() {
        Duration::from_secs(30)
    } else {
        RECEIVE_TIMEOUT
    }
}

/// Polls `check` every 25 ms until it returns `Some`, failing after [`settle_timeout`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + settle_timeout();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Message ids, newest first, as history returns them.
pub fn ids(messages: &[Message]) -> Vec<MessageId> {
    messages.iter().map(|m| m.id).collect()
}
