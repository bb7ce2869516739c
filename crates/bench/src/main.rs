//! `chat-bench`: the load generator of the chat system.
//!
//! It drives a running `chat serve` exactly as real clients do — HTTP signups and
//! conversations, WebSocket `auth`, `send`, `message`, `sync` — and prints one JSON line
//! of figures per run: what was sent, acknowledged, delivered and lost, latency
//! percentiles from HDR histograms, and the server's CPU and memory from /proc.
//! bench/README.md explains the scenarios and how to read the figures.
//!
//! The bench runs on one thread by default, so on a small machine it takes one core
//! and leaves the rest to the server; `--threads` gives it more.

mod api;
mod body;
mod cli;
mod procfs;
mod report;
mod scenario;
mod stats;
mod tracker;
mod ws;

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use crate::cli::{Cli, Scenario};
use crate::report::Report;
use crate::scenario::Bench;

/// A progress line on stderr (stdout carries only the JSON line).
#[macro_export]
macro_rules! progress {
    ($($arg:tt)*) => {
        eprintln!("[chat-bench] {}", format_args!($($arg)*))
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let wanted_files = cli.scenario.connections() as u64 + 4096;
    match procfs::raise_open_file_limit(wanted_files) {
        Ok(limit) if limit < wanted_files => {
            progress!(
                "open-file limit is {limit}, below the {wanted_files} this run needs: connections will fail"
            );
        }
        Ok(_) => {}
        Err(error) => progress!("cannot raise the open-file limit: {error}"),
    }
    body::now_us(); // start the bench clock

    let runtime = match cli.common.threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        threads => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(threads))
            .enable_all()
            .build(),
    };
    let outcome = runtime
        .context("starting the runtime")
        .and_then(|runtime| runtime.block_on(run(cli)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let output = cli.common.output.clone();
    let bench = Bench::new(cli.common.clone())?;
    let params = match &cli.scenario {
        Scenario::Group(args) => serde_json::to_value(args),
        Scenario::Direct(args) => serde_json::to_value(args),
        Scenario::Idle(args) => serde_json::to_value(args),
        Scenario::History(args) => serde_json::to_value(args),
        Scenario::Reconnect(args) => serde_json::to_value(args),
        Scenario::Search(args) => serde_json::to_value(args),
        Scenario::Login(args) => serde_json::to_value(args),
    }?;
    let mut report = Report {
        scenario: cli.scenario.name(),
        label: cli.common.label.clone(),
        params,
        bench_threads: cli.common.threads,
        ..Report::default()
    };
    progress!("{} against {}", report.scenario, cli.common.server);
    match &cli.scenario {
        Scenario::Group(args) => scenario::group::run(&bench, args, &mut report).await?,
        Scenario::Direct(args) => scenario::direct::run(&bench, args, &mut report).await?,
        Scenario::Idle(args) => scenario::idle::run(&bench, args, &mut report).await?,
        Scenario::History(args) => scenario::history::run(&bench, args, &mut report).await?,
        Scenario::Reconnect(args) => scenario::reconnect::run(&bench, args, &mut report).await?,
        Scenario::Search(args) => scenario::search::run(&bench, args, &mut report).await?,
        Scenario::Login(args) => scenario::login::run(&bench, args, &mut report).await?,
    }
    report.unix_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let line = serde_json::to_string(&report)?;
    println!("{line}");
    if let Some(path) = output {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "{line}").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
