//! `login`: a burst of `users` sign-ups, then each of them logging in, `concurrency`
//! requests in flight at a time, as a load generator or a busy morning does. Both
//! are one Argon2id password hash each on the server (19 MiB of working memory and a
//! core for tens of milliseconds), so this measures the password-hashing pool:
//! logins per second, login latency, how many requests it refused, and the server's
//! resident memory before the burst, at its peak and `settle_secs` after it, which
//! is what issue 16 was about (1,000 sign-ups left 368 MB resident for good).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::ensure;
use futures::StreamExt;
use tokio::time::Instant;

use super::Bench;
use crate::api::{ApiError, BENCH_PASSWORD};
use crate::body::now_us;
use crate::cli::LoginArgs;
use crate::report::{CostMeter, Report, round3};
use crate::stats::{self, Metric};

/// How often the server's resident memory is read during the burst, for its peak.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

pub async fn run(bench: &Bench, args: &LoginArgs, report: &mut Report) -> anyhow::Result<()> {
    ensure!(
        args.users >= 1 && args.concurrency >= 1,
        "--users and --concurrency must be at least 1"
    );
    let meter = CostMeter::start(bench.common.server_pid);
    let rss_idle = server_rss_kib(bench);
    let peak = Arc::new(AtomicU64::new(rss_idle.unwrap_or(0)));
    let sampler = bench
        .common
        .server_pid
        .map(|pid| tokio::spawn(sample_peak(pid, peak.clone())));
    stats::take();

    let prefix = format!("l{}_", bench.tag);
    let names: Vec<String> = (0..args.users).map(|i| format!("{prefix}{i}")).collect();
    let started = Instant::now();
    let signed_up = burst(bench, &names, args.concurrency, Phase::Signup, report).await;
    let signup_s = started.elapsed().as_secs_f64();
    let signup_latency = stats::take().summary(Metric::Request);
    crate::progress!("{signed_up} of {} sign-ups in {signup_s:.1} s", args.users);

    let started = Instant::now();
    let logged_in = burst(bench, &names, args.concurrency, Phase::Login, report).await;
    let login_s = started.elapsed().as_secs_f64();
    let login_latency = stats::take().summary(Metric::Request);
    crate::progress!("{logged_in} of {} logins in {login_s:.1} s", args.users);
    if let Some(sampler) = &sampler {
        sampler.abort();
    }
    let rss_end_of_burst = server_rss_kib(bench);
    let (server, bench_cost) = meter.finish(0);

    crate::progress!(
        "waiting {} s for the server's memory to settle",
        args.settle_secs
    );
    tokio::time::sleep(Duration::from_secs_f64(args.settle_secs)).await;
    let rss_after = server_rss_kib(bench);

    report.duration_s = round3(signup_s + login_s);
    report.request_latency_us = Some(login_latency);
    report.server = server;
    report.bench = bench_cost;
    report.extra("signed_up", signed_up);
    report.extra("logged_in", logged_in);
    report.extra(
        "signups_per_sec",
        round3(signed_up as f64 / signup_s.max(1e-9)),
    );
    report.extra(
        "logins_per_sec",
        round3(logged_in as f64 / login_s.max(1e-9)),
    );
    report.extra("signup_latency_us", serde_json::to_value(signup_latency)?);
    report.extra("login_latency_us", serde_json::to_value(login_latency)?);
    if let Some(idle) = rss_idle {
        let peak = peak
            .load(Ordering::Relaxed)
            .max(rss_end_of_burst.unwrap_or(0));
        report.extra("server_rss_idle_kib", idle);
        report.extra("server_rss_peak_kib", peak);
        if let Some(after) = rss_after {
            report.extra("server_rss_after_kib", after);
            report.extra("server_rss_retained_kib", after.saturating_sub(idle));
        }
    }
    ensure!(
        signed_up > 0 && logged_in > 0,
        "no sign-up or no login succeeded: {:?}",
        report.errors
    );
    Ok(())
}

#[derive(Clone, Copy)]
enum Phase {
    Signup,
    Login,
}

/// Runs one request per name, `concurrency` at a time; counts successes, records
/// their latency and tallies failures by code in the report.
async fn burst(
    bench: &Bench,
    names: &[String],
    concurrency: usize,
    phase: Phase,
    report: &mut Report,
) -> usize {
    let outcomes: Vec<Result<(), ApiError>> = futures::stream::iter(names)
        .map(|name| async move {
            let began_us = now_us();
            let outcome = match phase {
                Phase::Signup => bench.api.signup(name, BENCH_PASSWORD).await.map(drop),
                Phase::Login => bench.api.login(name, BENCH_PASSWORD).await.map(drop),
            };
            if outcome.is_ok() {
                stats::record(Metric::Request, now_us() - began_us);
            }
            outcome
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let label = match phase {
        Phase::Signup => "signup",
        Phase::Login => "login",
    };
    let mut succeeded = 0;
    for outcome in outcomes {
        match outcome {
            Ok(()) => succeeded += 1,
            Err(error) => *report.errors.entry(error_kind(label, &error)).or_default() += 1,
        }
    }
    succeeded
}

/// `login: 503 overloaded`, so a thousand failures group into a few keys.
fn error_kind(phase: &str, error: &ApiError) -> String {
    match error {
        ApiError::Refused { status, code, .. } => format!("{phase}: {} {code}", status.as_u16()),
        ApiError::Transport { .. } => format!("{phase}: transport"),
    }
}

fn server_rss_kib(bench: &Bench) -> Option<u64> {
    let pid = bench.common.server_pid?;
    crate::procfs::sample(pid).ok().map(|s| s.rss_kib)
}

/// Keeps the highest resident memory read, until aborted.
async fn sample_peak(pid: u32, peak: Arc<AtomicU64>) {
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    loop {
        every.tick().await;
        if let Ok(sample) = crate::procfs::sample(pid) {
            peak.fetch_max(sample.rss_kib, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::{Method, StatusCode};

    use super::*;

    #[test]
    fn failures_group_by_phase_status_and_code() {
        let refused = ApiError::Refused {
            method: Method::POST,
            path: "/auth/login".into(),
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "overloaded".into(),
            message: "busy".into(),
        };
        assert_eq!(error_kind("login", &refused), "login: 503 overloaded");
    }
}
