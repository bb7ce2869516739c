//! `direct`: users in pairs, one direct conversation per pair, both sending to each
//! other — the one-to-one chat that most traffic of a chat product is.

use std::sync::Arc;

use anyhow::{Context as _, ensure};
use futures::{StreamExt, TryStreamExt};

use super::Bench;
use super::traffic::{self, ClientPlan, ConversationPlan, TrafficPlan};
use crate::cli::DirectArgs;
use crate::report::Report;

pub async fn run(bench: &Bench, args: &DirectArgs, report: &mut Report) -> anyhow::Result<()> {
    ensure!(
        args.clients >= 2 && args.clients.is_multiple_of(2),
        "--clients must be an even number, at least 2"
    );
    let users = bench.signup("d", args.clients).await?;
    let conversations: Vec<ConversationPlan> = futures::stream::iter(users.chunks(2))
        .map(|pair| async move {
            let conversation = bench.api.create_direct(&pair[0], pair[1].user.id).await?;
            anyhow::Ok(ConversationPlan {
                id: conversation.id,
                senders: 2,
            })
        })
        .buffered(1)
        .try_collect()
        .await
        .context("creating the direct conversations")?;
    let mut clients = Vec::with_capacity(args.clients * args.traffic.conns_per_user);
    for (index, user) in users.iter().enumerate() {
        let token: Arc<str> = Arc::from(user.token.as_str());
        for connection in 0..args.traffic.conns_per_user {
            clients.push(ClientPlan {
                conversation: index / 2,
                token: Arc::clone(&token),
                sender_slot: (connection == 0).then_some((index % 2) as u32),
            });
        }
    }
    let plan = TrafficPlan {
        conversations,
        clients,
        traffic: args.traffic.clone(),
        reconnect_every: None,
    };
    traffic::run(bench, plan, report).await
}
