//! The Kafka message log against a real Kafka-protocol broker: a `tansu` process
//! (`CHAT_TEST_TANSU`, installed by scripts/test) with in-memory storage on a free
//! loopback port, one per test.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::{ConversationId, UserId};
use chat_server::log::kafka::{KafkaLog, KafkaSettings};
use chat_server::log::{MessageLog, NewMessage};
use chat_server::snowflake::Snowflake;
use uuid::Uuid;

struct Tansu {
    child: Child,
    address: String,
}

impl Tansu {
    fn start() -> Tansu {
        let binary = std::env::var("CHAT_TEST_TANSU")
            .expect("CHAT_TEST_TANSU must name the tansu broker binary (scripts/test installs it)");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(binary)
            .args([
                "broker",
                "--storage-engine",
                "memory://tansu/",
                "--listener-url",
                &url,
            ])
            .args(["--advertised-listener-url", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Tansu { child, address }
    }

    fn settings(&self) -> KafkaSettings {
        KafkaSettings {
            brokers: self.address.clone(),
            topic: "chat.messages".into(),
            partitions: 3,
            replication: 1,
            fetch_wait_ms: 50,
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn message(conversation: i64, body: &str) -> NewMessage {
    NewMessage {
        conversation_id: ConversationId(conversation),
        sender_id: UserId(1),
        client_msg_id: Uuid::new_v4(),
        body: body.to_owned(),
    }
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

#[tokio::test]
async fn appends_are_ordered_per_conversation_and_a_group_resumes_after_its_commit() {
    let broker = Tansu::start();
    let log = KafkaLog::open(broker.settings(), Arc::new(Snowflake::new(1)))
        .await
        .unwrap();
    let live = within("fan-out consumer", log.consume_from_end())
        .await
        .unwrap();

    let mut appended = Vec::new();
    for i in 0..60 {
        appended.push(log.append(message(i % 4, &format!("m{i}"))).await.unwrap());
    }
    // The end-of-log consumer sees every append after it started, in order per
    // conversation.
    let mut live = live;
    let mut seen = Vec::new();
    while seen.len() < appended.len() {
        seen.extend(within("live batch", live.next_batch(100)).await.unwrap());
    }
    let mut per_conversation: BTreeMap<ConversationId, Vec<_>> = BTreeMap::new();
    for m in &seen {
        per_conversation
            .entry(m.conversation_id)
            .or_default()
            .push(m.id);
    }
    for ids in per_conversation.values() {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids increase within a conversation"
        );
    }

    // A group reads from the start, commits half, and a new member resumes there.
    let mut group = within("group consumer", log.consume_as("persister-test"))
        .await
        .unwrap();
    let mut first = Vec::new();
    while first.len() < 30 {
        first.extend(
            within("group batch", group.next_batch(30 - first.len()))
                .await
                .unwrap(),
        );
    }
    group.commit().await.unwrap();
    within("commit is visible", async {
        loop {
            let committed = log.committed("persister-test").await.unwrap();
            if committed.0.values().sum::<i64>() >= 30 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    drop(group);
    let mut resumed = within("second group consumer", log.consume_as("persister-test"))
        .await
        .unwrap();
    let mut rest = Vec::new();
    while first.len() + rest.len() < appended.len() {
        rest.extend(
            within("resumed batch", resumed.next_batch(100))
                .await
                .unwrap(),
        );
    }
    let mut all: Vec<_> = first.iter().chain(&rest).map(|m| m.id).collect();
    all.sort();
    let mut want: Vec<_> = appended.iter().map(|m| m.id).collect();
    want.sort();
    assert_eq!(all, want, "nothing lost or repeated across the handover");
    assert!(
        log.tail()
            .await
            .unwrap()
            .covers(&log.committed("persister-test").await.unwrap())
    );
}

#[tokio::test]
async fn an_unreachable_broker_refuses_appends_instead_of_acknowledging() {
    let broker = Tansu::start();
    let log = KafkaLog::open(broker.settings(), Arc::new(Snowflake::new(2)))
        .await
        .unwrap();
    log.append(message(1, "before")).await.unwrap();
    drop(broker);
    let started = Instant::now();
    let refused = within("a refused append", log.append(message(1, "while down"))).await;
    assert!(
        refused.is_err(),
        "an append the broker never took must not succeed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "refused within the delivery timeout"
    );
    assert!(log.check().await.is_err(), "readiness reports the log");
}
