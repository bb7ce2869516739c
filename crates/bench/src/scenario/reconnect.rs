//! `reconnect`: group traffic while every connection drops now and then (without a
//! close handshake, as a lost network does), reconnects, sends `sync` since the newest
//! message it saw and resends its unacknowledged messages with the same
//! `client_msg_id`. Afterwards every acknowledged message must have reached every
//! member exactly once by id: gaps are `lost`, a resend that became a second message
//! is a `duplicate`; replays of messages already seen are `redelivered` (allowed).

use std::time::Duration;

use anyhow::ensure;

use super::Bench;
use super::group::plan_groups;
use super::traffic;
use crate::cli::ReconnectArgs;
use crate::report::Report;

pub async fn run(bench: &Bench, args: &ReconnectArgs, report: &mut Report) -> anyhow::Result<()> {
    ensure!(
        args.reconnect_every_ms >= 10,
        "--reconnect-every-ms must be at least 10"
    );
    let mut plan = plan_groups(bench, &args.group, "r").await?;
    plan.reconnect_every = Some(Duration::from_millis(args.reconnect_every_ms));
    report.extra("groups", plan.conversations.len());
    traffic::run(bench, plan, report).await
}
