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

/// Reads from `consumer` until every id of `want` has arrived (or 30 s pass);
/// returns what arrived, in order.
async fn read_until_all(
    consumer: &mut Box<dyn chat_server::log::LogConsumer>,
    want: &std::collections::BTreeSet<chat_protocol::MessageId>,
) -> Vec<chat_protocol::MessageId> {
    let mut seen = Vec::new();
    let mut have = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !want.is_subset(&have) && Instant::now() < deadline {
        if let Ok(Ok(batch)) =
            tokio::time::timeout(Duration::from_millis(500), consumer.next_batch(1024)).await
        {
            for m in batch {
                have.insert(m.id);
                seen.push(m.id);
            }
        }
    }
    seen
}

#[tokio::test]
async fn consumers_miss_nothing_when_several_producers_append_to_one_partition_at_once() {
    // Several nodes appending to one conversation at once is the case where a broker
    // may make a later batch visible before an earlier one (tansu advances the high
    // watermark before it stores the batch); a consumer must not skip the earlier one.
    const NODES: u16 = 4;
    const TASKS: usize = 6;
    const EACH: usize = 40;
    let broker = Tansu::start();
    let mut logs = Vec::new();
    for node in 0..NODES {
        logs.push(Arc::new(
            KafkaLog::open(broker.settings(), Arc::new(Snowflake::new(10 + node)))
                .await
                .unwrap(),
        ));
    }
    let mut live = within("fan-out consumer", logs[0].consume_from_end())
        .await
        .unwrap();
    let mut group = within("group consumer", logs[1].consume_as("persister-test"))
        .await
        .unwrap();

    let mut appenders = tokio::task::JoinSet::new();
    for log in &logs {
        for task in 0..TASKS {
            let log = log.clone();
            appenders.spawn(async move {
                let mut ids = Vec::new();
                for i in 0..EACH {
                    let appended = log.append(message(7, &format!("t{task} m{i}"))).await;
                    ids.push(appended.expect("a healthy broker takes appends").id);
                }
                ids
            });
        }
    }
    let mut want = std::collections::BTreeSet::new();
    while let Some(ids) = appenders.join_next().await {
        want.extend(ids.unwrap());
    }
    assert_eq!(want.len(), NODES as usize * TASKS * EACH);

    for (name, consumer) in [("fan-out", &mut live), ("group", &mut group)] {
        let seen = read_until_all(consumer, &want).await;
        let distinct: std::collections::BTreeSet<_> = seen.iter().copied().collect();
        let missing: Vec<_> = want.difference(&distinct).collect();
        assert!(
            missing.is_empty(),
            "the {name} consumer missed {} of {} appends: {missing:?}",
            missing.len(),
            want.len()
        );
        assert_eq!(
            seen.len(),
            want.len(),
            "the {name} consumer repeated appends"
        );
    }
}
