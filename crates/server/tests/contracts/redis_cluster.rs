//! Node-id leases and presence across nodes in Redis: behaviour only the Redis
//! adapter has (the memory cache is one node by definition).

use std::time::Duration;

use chat_protocol::UserId;
use chat_server::cache::Presence;
use chat_server::cache::redis::lease::{self, Renewal};

#[tokio::test]
async fn a_leased_node_id_is_exclusive_until_it_lapses() {
    let redis = crate::fixtures::redis().await.expect("redis");
    let held = Duration::from_secs(120);
    let mut ids = std::collections::HashSet::new();
    let mut first = None;
    for _ in 0..1024 {
        let (id, token) = lease::lease_node_id_for(&redis.conn, &redis.prefix, held)
            .await
            .unwrap();
        assert!(ids.insert(id), "node id {id} was leased twice");
        first.get_or_insert((id, token));
    }
    assert!(
        lease::lease_node_id_for(&redis.conn, &redis.prefix, held)
            .await
            .is_err(),
        "all 1024 ids are held, so a 1025th node gets none"
    );
    let (id, token) = first.unwrap();
    assert_eq!(
        lease::renew_node_lease(&redis.conn, &redis.prefix, id, "someone else")
            .await
            .unwrap(),
        Renewal::Lost
    );
    assert_eq!(
        lease::renew_node_lease(&redis.conn, &redis.prefix, id, &token)
            .await
            .unwrap(),
        Renewal::Renewed
    );

    // A lease nobody renews lapses, and its id is free again.
    let other = format!("{}lapse:", redis.prefix);
    let short = Duration::from_millis(300);
    let (id, _) = lease::lease_node_id_for(&redis.conn, &other, short)
        .await
        .unwrap();
    let mut conn = redis.conn.clone();
    let key = format!("{other}node:{id}");
    assert!(
        redis::AsyncCommands::exists::<_, bool>(&mut conn, &key)
            .await
            .unwrap()
    );
    tokio::time::sleep(short + Duration::from_millis(300)).await;
    assert!(
        !redis::AsyncCommands::exists::<_, bool>(&mut conn, &key)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn presence_spans_nodes_and_a_crashed_nodes_users_go_offline() {
    let redis = crate::fixtures::redis().await.expect("redis");
    let ttl = Duration::from_millis(800);
    let (a, token_a) =
        lease::lease_node_id_for(&redis.conn, &redis.prefix, Duration::from_secs(60))
            .await
            .unwrap();
    let (b, _) = lease::lease_node_id_for(&redis.conn, &redis.prefix, ttl)
        .await
        .unwrap();
    let (node_a, node_b) = (redis.cache(a), redis.cache(b));
    let (alice, bob) = (UserId(1), UserId(2));

    assert!(
        node_a.connected(alice).await.unwrap(),
        "first connection: online"
    );
    assert!(
        !node_b.connected(alice).await.unwrap(),
        "second connection, other node"
    );
    assert!(
        !node_a.disconnected(alice).await.unwrap(),
        "still connected on node b"
    );
    assert_eq!(node_a.online(&[alice, bob]).await.unwrap(), vec![alice]);
    assert!(
        node_b.disconnected(alice).await.unwrap(),
        "last connection gone: offline"
    );
    assert!(node_a.online(&[alice]).await.unwrap().is_empty());

    // Bob's only node stops renewing its lease (it crashed): he goes offline.
    assert!(node_b.connected(bob).await.unwrap());
    assert_eq!(node_a.online(&[bob]).await.unwrap(), vec![bob]);
    tokio::time::sleep(ttl + Duration::from_millis(400)).await;
    assert!(node_a.online(&[bob]).await.unwrap().is_empty());
    assert_eq!(
        lease::renew_node_lease(&redis.conn, &redis.prefix, a, &token_a)
            .await
            .unwrap(),
        Renewal::Renewed
    );
}

#[tokio::test]
async fn a_dead_nodes_users_are_reaped_once_and_restored_if_it_comes_back() {
    let redis = crate::fixtures::redis().await.expect("redis");
    let ttl = Duration::from_millis(600);
    let (live, _) = lease::lease_node_id_for(&redis.conn, &redis.prefix, Duration::from_secs(60))
        .await
        .unwrap();
    let (dying, token) = lease::lease_node_id_for(&redis.conn, &redis.prefix, ttl)
        .await
        .unwrap();
    let (node_live, node_dying) = (redis.cache(live), redis.cache(dying));
    // Alice is only on the dying node; Bob on both; Carol closed her connection there.
    let (alice, bob, carol) = (UserId(1), UserId(2), UserId(3));
    node_dying.connected(alice).await.unwrap();
    node_dying.connected(alice).await.unwrap();
    node_dying.connected(bob).await.unwrap();
    node_live.connected(bob).await.unwrap();
    node_dying.connected(carol).await.unwrap();
    node_dying.disconnected(carol).await.unwrap();

    // While its lease holds, nothing is reaped.
    assert!(
        lease::reap_dead_nodes(&redis.conn, &redis.prefix)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;

    // Two survivors reap at once: Alice is announced offline exactly once, Bob (still
    // on the live node) and Carol (already offline) not at all.
    let (first, second) = tokio::join!(
        lease::reap_dead_nodes(&redis.conn, &redis.prefix),
        lease::reap_dead_nodes(&redis.conn, &redis.prefix),
    );
    let mut reaped = first.unwrap();
    reaped.extend(second.unwrap());
    assert_eq!(reaped, vec![alice]);
    assert_eq!(node_live.online(&[alice, bob]).await.unwrap(), vec![bob]);

    // The node was only cut off: it takes its lease back and counts its
    // connections again, which brings Alice back (Bob never left).
    assert_eq!(
        lease::renew_node_lease(&redis.conn, &redis.prefix, dying, &token)
            .await
            .unwrap(),
        Renewal::Retaken
    );
    let back = lease::restore_presence(&redis.conn, &redis.prefix, dying, &[(alice, 2), (bob, 1)])
        .await
        .unwrap();
    assert_eq!(back, vec![alice]);
    assert_eq!(
        node_live.online(&[alice, bob]).await.unwrap(),
        vec![alice, bob]
    );
    // Her two connections are counted: closing one leaves her online.
    assert!(!node_dying.disconnected(alice).await.unwrap());
    assert!(node_dying.disconnected(alice).await.unwrap());

    // A process that starts under the dying node's id clears what is left there.
    let offline = lease::clear_stale_presence(&redis.conn, &redis.prefix, dying)
        .await
        .unwrap();
    assert!(
        offline.is_empty(),
        "bob is still on the live node: {offline:?}"
    );
    assert_eq!(node_live.online(&[alice, bob]).await.unwrap(), vec![bob]);
    assert!(
        node_live.disconnected(bob).await.unwrap(),
        "his last connection is gone"
    );
}
