//! The dataset sink end to end (DESIGN.md §10): users send through the real API, the
//! sink writes the Delta table (a task of `chat serve` in embedded mode, a `chat
//! pipeline` process on the Kafka log in distributed mode), and the table is read
//! back by an independent reader: `scripts/read_dataset.py` with `deltalake` and
//! `pyarrow` from PyPI when `CHAT_TEST_PYTHON` names a Python that has them (always in
//! CI), else the Parquet files through the `deltalake` crate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chat_protocol::MessageId;
use chat_server::pipeline::pseudonym::Pseudonymizer;
use chat_test_support::server::Server;
use chat_test_support::services;
use chat_test_support::users::TestUser;
use rand::Rng;
use reqwest::StatusCode;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::chat;

const KEY: &str = "dataset-test-key-3f9a1c7e5b2d4068a9e1";
const FLUSH_MS: &str = "200";

/// One row as the test checks it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Row {
    event_id: i64,
    kind: String,
    author: String,
    key_id: String,
    body: Option<String>,
    mentions: Vec<String>,
}

/// The dataset directory, and in distributed mode the `chat pipeline` process.
struct Sink {
    dir: tempfile::TempDir,
    pipeline: Option<Child>,
}

fn dataset_env(dir: &Path) -> Vec<(String, String)> {
    vec![
        ("CHAT_DATASET_DIR".into(), dir.display().to_string()),
        ("CHAT_DATASET_KEY".into(), KEY.into()),
        ("CHAT_DATASET_FLUSH_MS".into(), FLUSH_MS.into()),
    ]
}

/// A server whose log the sink reads: in embedded mode the sink runs inside it.
async fn server_with_sink() -> (Server, Sink) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let env = dataset_env(&dir.path().join("table"));
    // Sends as fast as the test can make them: no rate limit in the way.
    let unlimited = [
        ("CHAT_SEND_RATE_PER_SEC", "10000"),
        ("CHAT_SEND_BURST", "10000"),
    ];
    let server = if services::distributed() {
        chat().env(&unlimited).start().await
    } else {
        let mut env: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.extend(unlimited);
        chat().env(&env).start().await
    };
    let mut sink = Sink {
        dir,
        pipeline: None,
    };
    if services::distributed() {
        sink.pipeline = Some(start_pipeline(&server, &sink));
    }
    (server, sink)
}

impl Sink {
    fn table(&self) -> PathBuf {
        self.dir.path().join("table")
    }
}

/// `chat pipeline` on the server's services (distributed mode).
fn start_pipeline(server: &Server, sink: &Sink) -> Child {
    let services = server
        .services
        .as_ref()
        .expect("distributed mode has services");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(sink.dir.path().join("pipeline.log"))
        .expect("open the pipeline log");
    Command::new(env!("CARGO_BIN_EXE_chat"))
        .arg("pipeline")
        .env("RUST_LOG", "info")
        .envs(services.env())
        .envs(dataset_env(&sink.table()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn chat pipeline")
}

/// Reads the table with the independent reader (or the crate when no Python is set).
async fn read_table(dir: &Path) -> Option<Vec<Row>> {
    if !dir.join("_delta_log").exists() {
        return None;
    }
    match std::env::var("CHAT_TEST_PYTHON") {
        Ok(python) => read_with_python(&python, dir).await,
        Err(_) => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must set CHAT_TEST_PYTHON (scripts/test does): the table is read by an \
                 independent reader there"
            );
            read_with_crate(dir).await
        }
    }
}

async fn read_with_python(python: &str, dir: &Path) -> Option<Vec<Row>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/read_dataset.py");
    let output = Command::new(python)
        .arg(script)
        .arg(dir)
        .output()
        .await
        .expect("run scripts/read_dataset.py");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "read_dataset.py printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(
        output.status.success(),
        "the Python reader found problems: {}",
        report["problems"]
    );
    for file in report["files"].as_array().into_iter().flatten() {
        assert_eq!(file["codecs"], json!(["ZSTD"]), "{file}");
        assert_eq!(file["schema_version"], json!("1"), "{file}");
    }
    assert_eq!(report["partition_columns"], json!(["day"]));
    let rows = report["rows"].as_array()?;
    Some(
        rows.iter()
            .map(|row| Row {
                event_id: row["event_id"].as_i64().unwrap_or_default(),
                kind: row["kind"].as_str().unwrap_or_default().to_owned(),
                author: row["author"].as_str().unwrap_or_default().to_owned(),
                key_id: row["key_id"].as_str().unwrap_or_default().to_owned(),
                body: row["body"].as_str().map(str::to_owned),
                mentions: row["mentions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m.as_str().map(str::to_owned))
                    .collect(),
            })
            .collect(),
    )
}

async fn read_with_crate(dir: &Path) -> Option<Vec<Row>> {
    use deltalake::arrow::array::{Array, AsArray};
    use deltalake::arrow::datatypes::Int64Type;
    use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let url = deltalake::ensure_table_uri(dir.to_string_lossy()).ok()?;
    let table = deltalake::open_table(url).await.ok()?;
    let mut rows = Vec::new();
    for uri in table.get_file_uris().ok()? {
        let path = uri.strip_prefix("file://").unwrap_or(&uri).to_owned();
        let file = std::fs::File::open(&path).expect("open a data file");
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("a Parquet file");
        let metadata = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned();
        assert!(
            metadata
                .unwrap_or_default()
                .iter()
                .any(|kv| kv.key == "chat.schema_version" && kv.value.as_deref() == Some("1")),
            "{path} has the schema version"
        );
        for batch in builder.build().expect("a reader") {
            let batch = batch.expect("a batch");
            let column = |name: &str| batch.column_by_name(name).expect(name).clone();
            let (ids, kinds, authors, keys, bodies, mentions) = (
                column("event_id"),
                column("kind"),
                column("author"),
                column("key_id"),
                column("body"),
                column("mentions"),
            );
            let mentions = mentions.as_list::<i32>();
            for i in 0..batch.num_rows() {
                let listed = mentions.value(i);
                rows.push(Row {
                    event_id: ids.as_primitive::<Int64Type>().value(i),
                    kind: kinds.as_string::<i32>().value(i).to_owned(),
                    author: authors.as_string::<i32>().value(i).to_owned(),
                    key_id: keys.as_string::<i32>().value(i).to_owned(),
                    body: (!bodies.is_null(i))
                        .then(|| bodies.as_string::<i32>().value(i).to_owned()),
                    mentions: (0..listed.len())
                        .map(|j| listed.as_string::<i32>().value(j).to_owned())
                        .collect(),
                });
            }
        }
    }
    rows.sort_by_key(|r| r.event_id);
    Some(rows)
}

/// Waits until the table holds at least `count` rows, and returns them.
async fn rows_once_at_least(dir: &Path, count: usize) -> Vec<Row> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let rows = read_table(dir).await.unwrap_or_default();
        if rows.len() >= count {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the table holds {} rows, not {count}, after a minute",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn consent(user: &TestUser, allowed: bool) {
    user.patch("/me", &json!({"dataset_consent": allowed}))
        .await
        .expect_success();
}

#[tokio::test]
async fn the_table_holds_each_consented_message_once_pseudonymous_and_scrubbed() {
    let (server, sink) = server_with_sink().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    consent(&alice, true).await;
    // bob never chooses: the operator's default (opt_in) keeps him out.
    let group = alice.group_with("pair", &[&bob]).await.id;

    let mut sent: Vec<MessageId> = Vec::new();
    sent.push(
        alice
            .send_http(group, "write to alice@example.com")
            .await
            .id,
    );
    sent.push(alice.send_http(group, "@bob see above").await.id);
    for i in 0..20 {
        sent.push(alice.send_http(group, &format!("alice {i}")).await.id);
        bob.send_http(group, &format!("bob {i}")).await;
    }

    let rows = rows_once_at_least(&sink.table(), sent.len()).await;
    // The next flush could only add what is still unwritten: there is none.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let rows_later = read_table(&sink.table()).await.unwrap_or_default();
    assert_eq!(rows_later, rows, "nothing more arrives");

    let keys = Pseudonymizer::new(KEY.as_bytes()).unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.event_id).collect();
    let expected: Vec<i64> = sent.iter().map(|id| id.0).collect();
    assert_eq!(
        ids, expected,
        "alice's messages, each once, and nothing of bob's"
    );
    for row in &rows {
        assert_eq!(row.author, keys.user(alice.id()));
        assert_eq!(row.key_id, keys.key_id());
        assert_eq!(row.kind, "post");
    }
    assert_eq!(rows[0].body.as_deref(), Some("write to <EMAIL>"));
    let bob_pseudonym = keys.user(bob.id());
    assert_eq!(
        rows[1].body.as_deref(),
        Some(format!("@{bob_pseudonym} see above").as_str())
    );
    assert_eq!(rows[1].mentions, [bob_pseudonym]);
    let everything = format!("{rows:?}");
    assert!(!everything.contains("alice@example.com") && !everything.contains("@bob "));
}

#[tokio::test]
async fn killing_the_sink_at_any_moment_writes_no_event_twice_and_loses_none() {
    let (mut server, mut sink) = server_with_sink().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;
    consent(&alice, true).await;
    let group = alice.group_with("pair", &[&bob]).await.id;

    let mut sent: Vec<i64> = Vec::new();
    for round in 0..5 {
        for i in 0..15 {
            let reply = alice
                .post(
                    &format!("/conversations/{group}/messages"),
                    &json!({"client_msg_id": uuid::Uuid::new_v4(), "body": format!("r{round} m{i}")}),
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
            sent.push(
                reply.json::<serde_json::Value>()["id"]
                    .as_str()
                    .and_then(|id| id.parse().ok())
                    .expect("an id"),
            );
        }
        // Somewhere before, during or after the next flush (every 200 ms).
        let pause_ms = rand::thread_rng().gen_range(0..400);
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        match sink.pipeline.take() {
            Some(mut pipeline) => {
                pipeline.kill().await.expect("kill -9 chat pipeline");
                sink.pipeline = Some(start_pipeline(&server, &sink));
            }
            None => server.crash_and_restart().await,
        }
    }

    let rows = rows_once_at_least(&sink.table(), sent.len()).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let rows = read_table(&sink.table()).await.unwrap_or(rows);
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for row in &rows {
        *counts.entry(row.event_id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "events written twice: {twice:?}");
    let mut ids: Vec<i64> = counts.into_keys().collect();
    ids.sort();
    sent.sort();
    assert_eq!(ids, sent, "every acknowledged message, once");
}
