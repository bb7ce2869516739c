//! Contract tests: one suite per port, written once and run against every adapter
//! of that port, so the adapters are proven to behave alike.
//!
//! | port | adapters |
//! |---|---|
//! | `Users`, `Conversations`, `ReadMarkers`, `MessageStore` | SQLite, PostgreSQL |
//! | `Sessions` | SQLite, PostgreSQL, Redis |
//! | `Presence`, `RateLimits`, `SendKeys` | memory, Redis |
//! | `MessageLog` | SQLite, Kafka (a real `tansu` broker) |
//!
//! Each test gets fresh state of its own: a temporary SQLite file, a new PostgreSQL
//! database (`CHAT_TEST_DATABASE_URL`), a Redis key prefix (`CHAT_TEST_REDIS_URL`)
//! or a broker process (`CHAT_TEST_TANSU`). An unreachable service fails the test;
//! nothing is skipped. Behaviour only one adapter has (node leases in Redis, a broker
//! going away) is tested beside the suites, in `redis_cluster` and `log`.

mod cache;
mod events;
mod fixtures;
mod log;
mod redis_cluster;
mod roles;
mod sessions;
mod stores;

/// Runs each listed suite test against each listed adapter: for every adapter a
/// module of that name with one `#[tokio::test]` per suite test, which builds the
/// adapter's fixture and hands the suite its ports (`fixture.ports()`).
macro_rules! contract {
    (adapters: [$($adapter:ident => $fixture:path),+ $(,)?], tests: $tests:tt) => {
        $( crate::contract!(@adapter $adapter, $fixture, $tests); )+
    };
    (@adapter $adapter:ident, $fixture:path, [$($test:ident),+ $(,)?]) => {
        mod $adapter {
            $(
                #[tokio::test]
                async fn $test() -> anyhow::Result<()> {
                    let fixture = $fixture().await?;
                    super::$test(&fixture.ports()).await
                }
            )+
        }
    };
}
pub(crate) use contract;
