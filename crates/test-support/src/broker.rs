//! A Kafka-protocol broker for tests: a `tansu` process with in-memory storage on a
//! free loopback port, one per test (or per cluster), so tests never share topics or
//! consumer groups and can run in parallel. The binary comes from `CHAT_TEST_TANSU`
//! (scripts/test installs it). Any test of a Kafka adapter starts one the same way:
//!
//! ```no_run
//! let broker = chat_test_support::broker::Broker::start();
//! let brokers: String = broker.address(); // "127.0.0.1:PORT", for CHAT_KAFKA_BROKERS
//! // ... point the adapter at `brokers`; dropping `broker` kills the process.
//! ```

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long tansu may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `tansu` broker; killed on drop, however the test ends.
pub struct Broker {
    port: u16,
    /// Behind a lock so that [`Broker::pause`] and [`Broker::resume`] work through the
    /// shared reference a cluster's nodes hold.
    child: Mutex<Option<Child>>,
}

impl Broker {
    /// Starts tansu on a free loopback port and returns once it accepts connections.
    /// Panics (failing the test) when `CHAT_TEST_TANSU` is unset or the broker does not
    /// listen within 20 s. It blocks the calling thread while it waits.
    pub fn start() -> Broker {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("find a free port");
        let broker = Broker {
            port,
            child: Mutex::new(None),
        };
        broker.spawn();
        broker
    }

    /// The bootstrap address, `127.0.0.1:PORT`: what `CHAT_KAFKA_BROKERS` (and the
    /// Kafka log's `brokers` setting) take.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&self) {
        let binary = std::env::var("CHAT_TEST_TANSU")
            .expect("CHAT_TEST_TANSU must name the tansu broker binary (scripts/test installs it)");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(binary)
            .args(["broker", "--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while TcpStream::connect(self.address()).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {}",
                self.address()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = self.child.lock().unwrap().as_ref() {
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing answers, as
    /// with a broker that hangs or is cut off.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused broker run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
