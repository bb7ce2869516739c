//! The command line: options every scenario shares, then one subcommand per scenario.
//! Every option has a default that runs in a few seconds on a laptop; the JSON line
//! repeats the options a run used, so a figure always says how it was made.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(
    name = "chat-bench",
    version,
    about = "Load generator for `chat serve`: drives it like real clients and prints one JSON line of figures per run",
    after_help = "Start the server with bench-friendly limits first (see bench/README.md), or use scripts/bench."
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Clone, Debug, Args, Serialize)]
pub struct Common {
    /// The server's address: a loopback address and port, optionally as http://ADDR.
    #[arg(long, env = "CHAT_BENCH_SERVER", default_value = "127.0.0.1:8080", value_parser = parse_loopback, global = true)]
    pub server: SocketAddr,
    /// The server's process id: adds its CPU time, CPU per delivered message and
    /// resident memory (read from /proc) to the figures.
    #[arg(long, env = "CHAT_BENCH_SERVER_PID", global = true)]
    pub server_pid: Option<u32>,
    /// Another process the server depends on, as NAME=PID (repeatable), e.g. the
    /// Kafka broker or Redis in distributed mode: its CPU time over the measured part
    /// is added to the figures under `services`.
    #[arg(long = "service-pid", value_parser = parse_service, global = true)]
    pub service_pids: Vec<(String, u32)>,
    /// Runtime threads of the bench: 1 runs everything on one thread (current-thread
    /// runtime), leaving the other cores to the server.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..), global = true)]
    pub threads: u16,
    /// Client sockets per loopback source address (127.0.0.1, then 127.0.0.2, …).
    #[arg(long, default_value_t = 20_000, global = true)]
    pub conns_per_source: usize,
    /// Signups in flight at once (each costs the server a password hash).
    #[arg(long, default_value_t = 8, global = true)]
    pub signup_concurrency: usize,
    /// WebSocket handshakes in flight at once.
    #[arg(long, default_value_t = 128, global = true)]
    pub connect_concurrency: usize,
    /// A free-form label copied into the JSON line.
    #[arg(long, global = true)]
    pub label: Option<String>,
    /// Also append the JSON line to this file.
    #[arg(long, global = true)]
    #[serde(skip)]
    pub output: Option<PathBuf>,
}

fn parse_service(value: &str) -> Result<(String, u32), String> {
    let (name, pid) = value
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PID, got {value:?}"))?;
    let pid = pid
        .parse()
        .map_err(|_| format!("{pid:?} is not a process id"))?;
    Ok((name.to_owned(), pid))
}

#[derive(Clone, Debug, Subcommand)]
pub enum Scenario {
    /// Fan-out: clients in group conversations, some of them sending at a fixed rate.
    Group(GroupArgs),
    /// Pairs of clients in direct conversations, both sending to each other.
    Direct(DirectArgs),
    /// Authenticated connections held open: the server's memory per connection.
    Idle(IdleArgs),
    /// Concurrent paginated history reads over one long conversation.
    History(HistoryArgs),
    /// Group traffic while every connection drops and reconnects with `sync`.
    Reconnect(ReconnectArgs),
    /// Concurrent full-text searches over one long conversation.
    Search(SearchArgs),
    /// A burst of sign-ups, then as many logins: password hashing and its memory.
    Login(LoginArgs),
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Group(_) => "group",
            Scenario::Direct(_) => "direct",
            Scenario::Idle(_) => "idle",
            Scenario::History(_) => "history",
            Scenario::Reconnect(_) => "reconnect",
            Scenario::Search(_) => "search",
            Scenario::Login(_) => "login",
        }
    }

    /// Sockets the bench will hold at once, for the open-file limit.
    pub fn connections(&self) -> usize {
        match self {
            Scenario::Group(args) => args.clients * args.traffic.conns_per_user,
            Scenario::Direct(args) => args.clients * args.traffic.conns_per_user,
            Scenario::Idle(args) => args.connections,
            Scenario::History(args) => args.readers + 1,
            Scenario::Reconnect(args) => args.group.clients * args.group.traffic.conns_per_user,
            Scenario::Search(args) => args.readers + 1,
            Scenario::Login(args) => args.concurrency,
        }
    }
}

/// How senders send.
#[derive(Clone, Debug, Args, Serialize)]
pub struct Traffic {
    /// Messages per second from each sender.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// Pad each body to at least this many bytes.
    #[arg(long, default_value_t = 0)]
    pub body_bytes: usize,
    /// After sending stops, wait at most this long for the last acks and deliveries.
    #[arg(long, default_value_t = 10.0)]
    pub drain_secs: f64,
    /// WebSocket connections per user (every one of them receives every message).
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub conns_per_user: usize,
}

#[derive(Clone, Debug, Args, Serialize)]
pub struct GroupArgs {
    /// Users in all (a multiple of --group-size).
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Members per group conversation.
    #[arg(long, default_value_t = 100)]
    pub group_size: usize,
    /// Senders per group.
    #[arg(long, default_value_t = 5)]
    pub senders: usize,
    #[command(flatten)]
    #[serde(flatten)]
    pub traffic: Traffic,
}

#[derive(Clone, Debug, Args, Serialize)]
pub struct DirectArgs {
    /// Users in all (an even number: one direct conversation per pair).
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    #[command(flatten)]
    #[serde(flatten)]
    pub traffic: Traffic,
}

#[derive(Clone, Debug, Args, Serialize)]
pub struct IdleArgs {
    /// Authenticated connections to hold open.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Users the connections belong to (round-robin); signups are slow by design.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Seconds to hold every connection before checking it still answers a ping.
    #[arg(long, default_value_t = 10.0)]
    pub hold_secs: f64,
}

#[derive(Clone, Debug, Args, Serialize)]
pub struct HistoryArgs {
    /// Messages in the conversation that is read.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Concurrent readers, each walking the whole history page by page, again and again.
    #[arg(long, default_value_t = 16)]
    pub readers: usize,
    /// Seconds of reading.
    #[arg(long, default_value_t = 20.0)]
    pub duration_secs: f64,
    /// Messages per page (the server allows at most 100).
    #[arg(long, default_value_t = 100)]
    pub page_size: u32,
    /// Unacknowledged sends in flight while filling the conversation.
    #[arg(long, default_value_t = 256)]
    pub fill_window: usize,
}

#[derive(Clone, Debug, Args, Serialize)]
pub struct SearchArgs {
    /// Messages in the conversation that is searched.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Concurrent searchers, each asking one query after another.
    #[arg(long, default_value_t = 8)]
    pub readers: usize,
    /// Seconds of searching.
    #[arg(long, default_value_t = 20.0)]
    pub duration_secs: f64,
    /// Results per search (the server allows at most 100).
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Unacknowledged sends in flight while filling the conversation.
    #[arg(long, default_value_t = 256)]
    pub fill_window: usize,
}

#[derive(Clone, Debug, Args, Serialize)]
pub struct LoginArgs {
    /// Users signed up, then logged in.
    #[arg(long, default_value_t = 1_000)]
    pub users: usize,
    /// Sign-ups (then logins) in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds after the last login before the server's memory is read again.
    #[arg(long, default_value_t = 10.0)]
    pub settle_secs: f64,
}

#[derive(Clone, Debug, Args, Serialize)]
pub struct ReconnectArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub group: GroupArgs,
    /// Mean milliseconds between two drops of one connection (each is drawn between
    /// half and one and a half times this).
    #[arg(long, default_value_t = 3_000)]
    pub reconnect_every_ms: u64,
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{text}` is not a whole number of at least 1")),
    }
}

/// Accepts `127.0.0.1:8080` or `http://127.0.0.1:8080/`; refuses anything that is not
/// loopback, since load is only ever aimed at this machine.
fn parse_loopback(text: &str) -> Result<SocketAddr, String> {
    let bare = text.trim_start_matches("http://").trim_end_matches('/');
    let bare = bare
        .strip_prefix("localhost:")
        .map(|port| format!("127.0.0.1:{port}"))
        .unwrap_or(bare.to_owned());
    let addr: SocketAddr = bare
        .parse()
        .map_err(|e| format!("`{text}` is not ADDR:PORT: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address: the bench only loads this machine"
        ));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_loopback_only() {
        assert_eq!(parse_loopback("127.0.0.1:8080").unwrap().port(), 8080);
        assert_eq!(
            parse_loopback("http://127.0.0.9:1/")
                .unwrap()
                .ip()
                .to_string(),
            "127.0.0.9"
        );
        assert_eq!(
            parse_loopback("localhost:3000").unwrap().to_string(),
            "127.0.0.1:3000"
        );
        assert!(parse_loopback("[::1]:80").is_ok());
        assert!(parse_loopback("10.0.0.1:80").is_err());
        assert!(parse_loopback("example.com:80").is_err());
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "chat-bench",
            "--server-pid",
            "7",
            "group",
            "--rate",
            "2",
            "--clients",
            "10",
        ])
        .unwrap();
        assert_eq!(cli.common.server_pid, Some(7));
        assert!(matches!(
            cli.scenario,
            Scenario::Group(GroupArgs { clients: 10, .. })
        ));
    }
}
