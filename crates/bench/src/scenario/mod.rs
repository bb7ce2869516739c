//! The scenarios, and what they share: signing users up and connecting them.
//!
//! `group`, `direct` and `reconnect` differ only in how users are put into
//! conversations and whether connections drop; they share the traffic engine in
//! [`traffic`]. `idle`, `history` and `search` measure other things and have their
//! own loops. `login` measures password hashing: sign-ups and logins only.

pub mod direct;
pub mod group;
pub mod history;
pub mod idle;
pub mod login;
pub mod reconnect;
pub mod search;
pub mod traffic;

use std::time::Instant;

use anyhow::Context as _;
use futures::StreamExt;

use crate::api::{Api, Session};
use crate::body::now_us;
use crate::cli::Common;
use crate::stats::{self, Metric};
use crate::ws::{self, ConnectError, Endpoint, Socket};

/// What every scenario needs to reach the server.
pub struct Bench {
    pub api: Api,
    pub endpoint: Endpoint,
    pub common: Common,
    /// Makes this run's usernames unique on a server that outlives runs.
    pub tag: String,
}

impl Bench {
    pub fn new(common: Common) -> anyhow::Result<Self> {
        let api = Api::new(common.server).context("building the HTTP client")?;
        let endpoint = Endpoint::new(common.server);
        Ok(Self {
            api,
            endpoint,
            common,
            tag: run_tag(),
        })
    }

    /// Signs up `count` users for `role` (a short lowercase word).
    pub async fn signup(&self, role: &str, count: usize) -> anyhow::Result<Vec<Session>> {
        let started = Instant::now();
        let prefix = format!("{role}{}_", self.tag);
        let users = self
            .api
            .signup_many(&prefix, count, self.common.signup_concurrency)
            .await
            .with_context(|| format!("signing up {count} users (is the server's signup limit raised? see bench/README.md)"))?;
        crate::progress!(
            "signed up {count} {role} users in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(users)
    }

    /// Opens one authenticated socket per token, the `index`-th from the `index`-th
    /// source address block; results in the order of `tokens`.
    pub async fn connect_all(&self, tokens: &[&str]) -> Vec<Result<Socket, ConnectError>> {
        let started = Instant::now();
        let per_source = self.common.conns_per_source;
        let sockets: Vec<_> = futures::stream::iter(tokens.iter().enumerate())
            .map(|(index, token)| async move {
                let began_us = now_us();
                let socket =
                    ws::connect(&self.endpoint, ws::source_ip(index, per_source), token).await;
                if socket.is_ok() {
                    stats::record(Metric::Connect, now_us() - began_us);
                }
                socket
            })
            .buffered(self.common.connect_concurrency.max(1))
            .collect()
            .await;
        let failed = sockets.iter().filter(|s| s.is_err()).count();
        crate::progress!(
            "connected {} sockets in {:.1} s ({failed} failed)",
            tokens.len() - failed,
            started.elapsed().as_secs_f64()
        );
        sockets
    }

    /// Like [`Bench::connect_all`], but the first failure fails the run.
    pub async fn connect_all_or_fail(&self, tokens: &[&str]) -> anyhow::Result<Vec<Socket>> {
        self.connect_all(tokens)
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .context("connecting the clients")
    }
}

/// A short lowercase tag from the clock and the process id.
fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut value = (nanos as u64) ^ (u64::from(std::process::id()) << 40);
    let mut tag = String::new();
    for _ in 0..6 {
        tag.push(char::from_digit((value % 36) as u32, 36).unwrap_or('x'));
        value /= 36;
    }
    tag
}

/// A small, fast pseudo-random generator (xorshift64*) for jitter: the bench needs
/// spread, not unpredictability.
#[derive(Clone, Debug)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_tags_are_short_and_lowercase() {
        let tag = run_tag();
        assert_eq!(tag.len(), 6);
        assert!(
            tag.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }

    #[test]
    fn jitter_stays_in_the_unit_interval_and_spreads() {
        let mut jitter = Jitter::new(7);
        let draws: Vec<f64> = (0..1000).map(|_| jitter.unit()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let mean = draws.iter().sum::<f64>() / 1000.0;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }
}
