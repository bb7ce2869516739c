//! `group`: fan-out. Users in group conversations of `group_size` members, the first
//! `senders` members of each sending; every member connection receives every message.

use std::sync::Arc;

use anyhow::{Context as _, ensure};
use futures::{StreamExt, TryStreamExt};

use super::Bench;
use super::traffic::{self, ClientPlan, ConversationPlan, TrafficPlan};
use crate::cli::GroupArgs;
use crate::report::Report;

pub async fn run(bench: &Bench, args: &GroupArgs, report: &mut Report) -> anyhow::Result<()> {
    let plan = plan_groups(bench, args, "g").await?;
    report.extra("groups", plan.conversations.len());
    traffic::run(bench, plan, report).await
}

/// Signs up the users, creates the groups and lays out the client connections.
pub async fn plan_groups(
    bench: &Bench,
    args: &GroupArgs,
    role: &str,
) -> anyhow::Result<TrafficPlan> {
    ensure!(args.group_size >= 2, "--group-size must be at least 2");
    ensure!(
        args.clients >= args.group_size && args.clients.is_multiple_of(args.group_size),
        "--clients ({}) must be a multiple of --group-size ({})",
        args.clients,
        args.group_size
    );
    ensure!(
        args.senders >= 1 && args.senders <= args.group_size,
        "--senders must be between 1 and --group-size"
    );
    let users = bench.signup(role, args.clients).await?;
    let conversations: Vec<ConversationPlan> =
        futures::stream::iter(users.chunks(args.group_size).enumerate())
            .map(|(index, members)| async move {
                let others = members[1..].iter().map(|m| m.user.id).collect();
                let conversation = bench
                    .api
                    .create_group(&members[0], &format!("bench group {index}"), others)
                    .await?;
                anyhow::Ok(ConversationPlan {
                    id: conversation.id,
                    senders: args.senders,
                })
            })
            .buffered(1)
            .try_collect()
            .await
            .context("creating the groups")?;
    let tokens: Vec<Arc<str>> = users.iter().map(|u| Arc::from(u.token.as_str())).collect();
    let clients = layout(
        args.clients,
        args.group_size,
        args.senders,
        args.traffic.conns_per_user,
    )
    .map(|seat| ClientPlan {
        conversation: seat.conversation,
        token: Arc::clone(&tokens[seat.user]),
        sender_slot: seat.sender_slot,
    })
    .collect();
    Ok(TrafficPlan {
        conversations,
        clients,
        traffic: args.traffic.clone(),
        reconnect_every: None,
    })
}

/// Where one connection sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seat {
    pub user: usize,
    pub conversation: usize,
    pub sender_slot: Option<u32>,
}

/// Users `g*group_size ..` form group `g`; its first `senders` members send, each from
/// their first connection only.
pub fn layout(
    clients: usize,
    group_size: usize,
    senders: usize,
    conns_per_user: usize,
) -> impl Iterator<Item = Seat> {
    (0..clients).flat_map(move |user| {
        let position = user % group_size;
        (0..conns_per_user).map(move |connection| Seat {
            user,
            conversation: user / group_size,
            sender_slot: (position < senders && connection == 0).then_some(position as u32),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_group_has_its_senders_on_first_connections_only() {
        let seats: Vec<Seat> = layout(6, 3, 2, 2).collect();
        assert_eq!(seats.len(), 12);
        assert_eq!(
            seats[0],
            Seat {
                user: 0,
                conversation: 0,
                sender_slot: Some(0)
            }
        );
        assert_eq!(
            seats[1],
            Seat {
                user: 0,
                conversation: 0,
                sender_slot: None
            }
        );
        assert_eq!(
            seats[2],
            Seat {
                user: 1,
                conversation: 0,
                sender_slot: Some(1)
            }
        );
        assert_eq!(
            seats[4],
            Seat {
                user: 2,
                conversation: 0,
                sender_slot: None
            }
        );
        assert_eq!(
            seats[6],
            Seat {
                user: 3,
                conversation: 1,
                sender_slot: Some(0)
            }
        );
        for conversation in 0..2 {
            let mut slots: Vec<u32> = seats
                .iter()
                .filter(|s| s.conversation == conversation)
                .filter_map(|s| s.sender_slot)
                .collect();
            slots.sort();
            assert_eq!(slots, vec![0, 1]);
        }
    }
}
