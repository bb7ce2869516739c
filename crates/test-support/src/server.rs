//! The real `chat` binary as a child process: started with `chat serve` on a random
//! loopback port and its own temporary data directory, with its output kept in a log
//! that is printed when a test fails. A test can SIGTERM, crash (SIGKILL) and restart
//! it on the same data directory, which is how durability is tested.
//!
//! The crate cannot name the binary itself: cargo only tells the chat-server
//! package's own tests where it is (`env!("CARGO_BIN_EXE_chat")`). So a test passes
//! the path in:
//!
//! ```no_run
//! # async fn example() {
//! use chat_test_support::server::Server;
//! # let binary = "target/debug/chat";
//! // In a chat-server test, `binary` is env!("CARGO_BIN_EXE_chat").
//! let server = Server::builder(binary)
//!     .env(&[("CHAT_SIGNUPS_PER_MINUTE", "2")])
//!     .start()
//!     .await;
//! let alice = server.signup("alice").await;
//! # }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chat_protocol::http::{AuthResponse, SignupRequest};
use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

use crate::api::Api;
use crate::contract::Contract;
use crate::services::{self, Services};
use crate::users::{PASSWORD, TestUser};

/// How long the server may take to print its URL.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the server may take to exit after SIGTERM.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the server currently listens. Shared by the server handle and every client
/// made from it, so clients follow the server across a restart (which gets a new port).
#[derive(Clone)]
pub struct Endpoint {
    addr: Arc<Mutex<SocketAddr>>,
    /// The server's OpenAPI document, read when the first reply is checked.
    pub(crate) contract: Arc<OnceLock<Arc<Contract>>>,
}

impl Endpoint {
    fn new() -> Endpoint {
        Endpoint {
            addr: Arc::new(Mutex::new(SocketAddr::from(([127, 0, 0, 1], 0)))),
            contract: Arc::new(OnceLock::new()),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        *self.addr.lock().unwrap()
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

/// How to start a server: which binary, on which services, with which environment.
/// Made by [`Server::builder`]; [`ServerBuilder::start`] starts it.
pub struct ServerBuilder {
    binary: PathBuf,
    /// `None`: fresh services of its own in distributed mode, none in embedded mode.
    services: Option<Arc<Services>>,
    /// Set after the defaults and the services' variables, so they override both.
    env: Vec<(String, String)>,
}

impl ServerBuilder {
    /// Adds these environment variables (they override the defaults and earlier ones).
    pub fn env(mut self, env: &[(&str, &str)]) -> ServerBuilder {
        self.env
            .extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        self
    }

    /// Runs on these services (shared by the nodes of a cluster) instead of its own.
    pub fn services(mut self, services: Arc<Services>) -> ServerBuilder {
        self.services = Some(services);
        self
    }

    /// Starts the server and waits until it listens.
    pub async fn start(self) -> Server {
        let services = self
            .services
            .or_else(|| services::distributed().then(|| Arc::new(Services::start())));
        let mut all = default_env();
        if let Some(services) = &services {
            all.extend(services.env());
        }
        for (key, value) in self.env {
            all.retain(|(k, _)| *k != key);
            all.push((key, value));
        }
        let root = tempfile::tempdir().expect("create a temp dir");
        std::fs::create_dir_all(root.path().join("data")).expect("create the data dir");
        let mut server = Server {
            binary: self.binary,
            child: None,
            endpoint: Endpoint::new(),
            env: all,
            root,
            starts: 0,
            services,
        };
        server.spawn().await;
        server
    }
}

/// A running `chat serve` process on a temporary data directory; killed on drop.
pub struct Server {
    /// The `chat` binary, kept to start it again after a restart or a crash.
    binary: PathBuf,
    child: Option<Child>,
    pub endpoint: Endpoint,
    env: Vec<(String, String)>,
    /// Holds `data/` (the server's data dir) and `server.log` (its output).
    root: tempfile::TempDir,
    starts: u32,
    /// PostgreSQL, Redis and the broker in distributed mode (see [`crate::services`]).
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
    /// A server of this `chat` binary with the default configuration, until the
    /// builder's methods say otherwise.
    pub fn builder(binary: impl Into<PathBuf>) -> ServerBuilder {
        ServerBuilder {
            binary: binary.into(),
            services: None,
            env: Vec::new(),
        }
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
        let mut command = Command::new(&self.binary);
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
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn the chat binary {}: {e}", self.binary.display()));
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
        *self.endpoint.addr.lock().unwrap() = addr;
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
