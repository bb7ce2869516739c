//! Group roles in the `Conversations` port, on SQLite and PostgreSQL: the creator is
//! the admin, only admins change others, the last admin leaving promotes the
//! longest-standing member, no group is left without an admin or a member (also
//! when two changes race), and every refused change changes nothing. Beside the
//! suite: the `0003_roles` migration gives each existing group an admin.

use std::time::Duration;

use anyhow::Context;
use chat_protocol::http::MemberRole;
use chat_protocol::{ConversationId, UserId};
use chat_server::store::{GroupChangeError, GroupUpdate, Removal};
use sqlx::Row;

use crate::fixtures::StorePorts;

crate::contract!(
    adapters: [
        sqlite => crate::fixtures::sqlite_stores,
        postgres => crate::fixtures::postgres_stores,
    ],
    tests: [
        the_creator_is_the_admin_and_direct_members_have_no_role_above_member,
        only_an_admin_changes_others_and_a_refusal_changes_nothing,
        the_last_admin_leaving_promotes_the_earliest_joined_member,
        a_tie_in_joining_time_promotes_the_smallest_user_id,
        the_last_member_cannot_leave,
        role_changes_are_all_or_nothing_and_an_admin_always_remains,
        two_admins_stepping_down_at_once_leave_one_admin,
        the_last_two_members_leaving_at_once_leave_one,
        a_direct_conversation_has_no_membership_changes,
    ]
);

async fn user(s: &StorePorts, name: &str) -> anyhow::Result<UserId> {
    Ok(s.users.create_user(name, name, "hash").await?.id)
}

/// The group's members and their roles, in joining order.
async fn roles(s: &StorePorts, group: ConversationId) -> anyhow::Result<Vec<(UserId, MemberRole)>> {
    Ok(s.conversations
        .members(&[group])
        .await?
        .remove(&group)
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.user.id, m.role))
        .collect())
}

async fn title(s: &StorePorts, group: ConversationId) -> anyhow::Result<Option<String>> {
    Ok(s.conversations
        .conversations(&[group])
        .await?
        .pop()
        .context("the group exists")?
        .title)
}

fn making_admin(users: &[UserId]) -> GroupUpdate<'_> {
    GroupUpdate {
        add_admins: users,
        ..GroupUpdate::default()
    }
}

fn unmaking_admin(users: &[UserId]) -> GroupUpdate<'_> {
    GroupUpdate {
        remove_admins: users,
        ..GroupUpdate::default()
    }
}

fn renaming(title: &str) -> GroupUpdate<'_> {
    GroupUpdate {
        title: Some(title),
        ..GroupUpdate::default()
    }
}

/// Joining times are milliseconds: a pause makes the next join strictly later.
async fn later() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

use MemberRole::{Admin, Member};

async fn the_creator_is_the_admin_and_direct_members_have_no_role_above_member(
    s: &StorePorts,
) -> anyhow::Result<()> {
    let a = user(s, "a").await?;
    let b = user(s, "b").await?;
    let c = user(s, "c").await?;
    let group = s.conversations.create_group("team", &[b, a]).await?;
    let by_user: std::collections::HashMap<_, _> = roles(s, group).await?.into_iter().collect();
    assert_eq!(
        by_user.get(&b),
        Some(&Admin),
        "the first member is the creator"
    );
    assert_eq!(by_user.get(&a), Some(&Member));
    assert!(s.conversations.is_admin(group, b).await?);
    assert!(!s.conversations.is_admin(group, a).await?);
    assert!(!s.conversations.is_admin(group, c).await?, "an outsider");
    assert!(!s.conversations.is_admin(ConversationId(999_999), b).await?);

    // Added members are plain members.
    s.conversations.add_members(group, b, &[c]).await?;
    assert!(!s.conversations.is_admin(group, c).await?);

    let (direct, _) = s.conversations.direct_conversation(a, b).await?;
    assert!(
        roles(s, direct)
            .await?
            .iter()
            .all(|(_, role)| *role == Member)
    );
    Ok(())
}

async fn only_an_admin_changes_others_and_a_refusal_changes_nothing(
    s: &StorePorts,
) -> anyhow::Result<()> {
    let admin = user(s, "admin").await?;
    let member = user(s, "member").await?;
    let other = user(s, "other").await?;
    let outsider = user(s, "outsider").await?;
    let group = s
        .conversations
        .create_group("team", &[admin, member, other])
        .await?;
    let before = roles(s, group).await?;

    let refusals = [
        s.conversations
            .add_members(group, member, &[outsider])
            .await
            .err(),
        s.conversations
            .remove_member(group, member, other)
            .await
            .err(),
        s.conversations
            .update_group(
                group,
                member,
                GroupUpdate {
                    title: Some("mine now"),
                    add_admins: &[member],
                    remove_admins: &[admin],
                },
            )
            .await
            .err(),
    ];
    for refusal in refusals {
        assert!(
            matches!(refusal, Some(GroupChangeError::NotAdmin)),
            "{refusal:?}"
        );
    }
    // An outsider is not told more than that the group is not theirs.
    assert!(matches!(
        s.conversations.remove_member(group, outsider, member).await,
        Err(GroupChangeError::Outsider)
    ));
    assert!(matches!(
        s.conversations
            .add_members(ConversationId(999_999), admin, &[member])
            .await,
        Err(GroupChangeError::Outsider)
    ));
    assert_eq!(roles(s, group).await?, before);
    assert_eq!(title(s, group).await?.as_deref(), Some("team"));

    // A member may leave; an admin may remove anyone, another admin included.
    assert_eq!(
        s.conversations.remove_member(group, member, member).await?,
        Removal::default()
    );
    s.conversations
        .update_group(group, admin, making_admin(&[other]))
        .await?;
    assert_eq!(
        s.conversations.remove_member(group, admin, other).await?,
        Removal::default()
    );
    assert_eq!(roles(s, group).await?, vec![(admin, Admin)]);
    Ok(())
}

async fn the_last_admin_leaving_promotes_the_earliest_joined_member(
    s: &StorePorts,
) -> anyhow::Result<()> {
    // `late` has the smallest id but joined last: joining time decides.
    let late = user(s, "late").await?;
    let founder = user(s, "founder").await?;
    let early = user(s, "early").await?;
    let group = s
        .conversations
        .create_group("team", &[founder, early])
        .await?;
    later().await;
    s.conversations.add_members(group, founder, &[late]).await?;

    let removal = s
        .conversations
        .remove_member(group, founder, founder)
        .await?;
    assert_eq!(removal.promoted, Some(early));
    assert_eq!(roles(s, group).await?, vec![(early, Admin), (late, Member)]);

    // With another admin left, leaving promotes nobody.
    s.conversations
        .update_group(group, early, making_admin(&[late]))
        .await?;
    assert_eq!(
        s.conversations.remove_member(group, early, early).await?,
        Removal::default()
    );
    assert_eq!(roles(s, group).await?, vec![(late, Admin)]);
    Ok(())
}

async fn a_tie_in_joining_time_promotes_the_smallest_user_id(s: &StorePorts) -> anyhow::Result<()> {
    let small = user(s, "small").await?;
    let large = user(s, "large").await?;
    let founder = user(s, "founder").await?;
    // One statement: all three join in the same millisecond.
    let group = s
        .conversations
        .create_group("team", &[founder, large, small])
        .await?;
    let removal = s
        .conversations
        .remove_member(group, founder, founder)
        .await?;
    assert_eq!(removal.promoted, Some(small));
    assert!(s.conversations.is_admin(group, small).await?);
    assert!(!s.conversations.is_admin(group, large).await?);
    Ok(())
}

async fn the_last_member_cannot_leave(s: &StorePorts) -> anyhow::Result<()> {
    let alone = user(s, "alone").await?;
    let group = s.conversations.create_group("solo", &[alone]).await?;
    assert!(matches!(
        s.conversations.remove_member(group, alone, alone).await,
        Err(GroupChangeError::LastMember)
    ));
    assert_eq!(roles(s, group).await?, vec![(alone, Admin)]);
    Ok(())
}

async fn role_changes_are_all_or_nothing_and_an_admin_always_remains(
    s: &StorePorts,
) -> anyhow::Result<()> {
    let admin = user(s, "admin").await?;
    let member = user(s, "member").await?;
    let outsider = user(s, "outsider").await?;
    let group = s
        .conversations
        .create_group("team", &[admin, member])
        .await?;
    let before = roles(s, group).await?;

    // One stranger in the list: neither the title nor the other change happens.
    let refused = s
        .conversations
        .update_group(
            group,
            admin,
            GroupUpdate {
                title: Some("renamed"),
                add_admins: &[member, outsider],
                remove_admins: &[],
            },
        )
        .await;
    assert!(
        matches!(refused, Err(GroupChangeError::NotMember(u)) if u == outsider),
        "{refused:?}"
    );
    // Stepping down as the only admin.
    let refused = s
        .conversations
        .update_group(
            group,
            admin,
            GroupUpdate {
                title: Some("renamed"),
                remove_admins: &[admin],
                ..GroupUpdate::default()
            },
        )
        .await;
    assert!(
        matches!(refused, Err(GroupChangeError::LastAdmin)),
        "{refused:?}"
    );
    assert_eq!(roles(s, group).await?, before);
    assert_eq!(title(s, group).await?.as_deref(), Some("team"));

    // Handing over in one change is fine: a successor, then stepping down.
    s.conversations
        .update_group(
            group,
            admin,
            GroupUpdate {
                title: Some("renamed"),
                add_admins: &[member],
                remove_admins: &[admin],
            },
        )
        .await?;
    assert_eq!(
        roles(s, group).await?,
        vec![(admin, Member), (member, Admin)]
    );
    assert_eq!(title(s, group).await?.as_deref(), Some("renamed"));
    // The former admin is now refused.
    assert!(matches!(
        s.conversations
            .update_group(group, admin, renaming("back"))
            .await,
        Err(GroupChangeError::NotAdmin)
    ));
    Ok(())
}

async fn two_admins_stepping_down_at_once_leave_one_admin(s: &StorePorts) -> anyhow::Result<()> {
    let a = user(s, "a").await?;
    let b = user(s, "b").await?;
    let c = user(s, "c").await?;
    for round in 0..10 {
        let group = s
            .conversations
            .create_group(&format!("race {round}"), &[a, b, c])
            .await?;
        s.conversations
            .update_group(group, a, making_admin(&[b]))
            .await?;
        let step_down = |who: UserId| {
            let conversations = s.conversations.clone();
            async move {
                conversations
                    .update_group(group, who, unmaking_admin(&[who]))
                    .await
            }
        };
        let (x, y) = tokio::join!(step_down(a), step_down(b));
        assert!(
            x.is_ok() ^ y.is_ok(),
            "round {round}: exactly one may step down: {x:?} {y:?}"
        );
        let refused = if x.is_err() { x } else { y };
        assert!(matches!(refused, Err(GroupChangeError::LastAdmin)));
        let admins = roles(s, group)
            .await?
            .into_iter()
            .filter(|(_, role)| *role == Admin)
            .count();
        assert_eq!(admins, 1, "round {round}");
    }
    Ok(())
}

async fn the_last_two_members_leaving_at_once_leave_one(s: &StorePorts) -> anyhow::Result<()> {
    let a = user(s, "a").await?;
    let b = user(s, "b").await?;
    for round in 0..10 {
        let group = s
            .conversations
            .create_group(&format!("race {round}"), &[a, b])
            .await?;
        let leave = |who: UserId| {
            let conversations = s.conversations.clone();
            async move { conversations.remove_member(group, who, who).await }
        };
        let (x, y) = tokio::join!(leave(a), leave(b));
        assert!(
            x.is_ok() ^ y.is_ok(),
            "round {round}: exactly one may leave: {x:?} {y:?}"
        );
        let members = roles(s, group).await?;
        assert_eq!(members.len(), 1, "round {round}");
        assert_eq!(members[0].1, Admin, "round {round}: the one left is admin");
    }
    Ok(())
}

async fn a_direct_conversation_has_no_membership_changes(s: &StorePorts) -> anyhow::Result<()> {
    let a = user(s, "a").await?;
    let b = user(s, "b").await?;
    let c = user(s, "c").await?;
    let (direct, _) = s.conversations.direct_conversation(a, b).await?;
    let refusals = [
        s.conversations.add_members(direct, a, &[c]).await.err(),
        s.conversations.remove_member(direct, a, a).await.err(),
        s.conversations.remove_member(direct, a, b).await.err(),
        s.conversations
            .update_group(direct, a, making_admin(&[a]))
            .await
            .err(),
    ];
    for refusal in refusals {
        assert!(
            matches!(refusal, Some(GroupChangeError::NotAGroup)),
            "{refusal:?}"
        );
    }
    assert_eq!(roles(s, direct).await?.len(), 2);
    Ok(())
}

/// Rows from before roles: two groups (1 and 2) whose members joined at different
/// times (and two at once), then the direct conversation 3, spelt per database, then
/// everyone's membership (`LEGACY_MEMBERS`).
const LEGACY_GROUPS: &str = "
    INSERT INTO users (username, display_name, password_hash, created_at) VALUES
        ('u1', 'u1', 'h', 0), ('u2', 'u2', 'h', 0), ('u3', 'u3', 'h', 0), ('u4', 'u4', 'h', 0);
    INSERT INTO conversations (kind, title, created_at) VALUES ('group', 'a later joiner first', 0);
    INSERT INTO conversations (kind, title, created_at) VALUES ('group', 'a tie', 0);
";

const LEGACY_MEMBERS: &str = "
    INSERT INTO members (conversation_id, user_id, joined_at) VALUES
        (1, 1, 200), (1, 3, 100), (1, 2, 300),
        (2, 4, 100), (2, 2, 100), (2, 3, 500),
        (3, 1, 0), (3, 2, 0);
";

/// Each legacy group's admin after the migration, as (conversation, user): the
/// earliest joined, and on a tie the smallest id; none in the direct conversation.
const LEGACY_ADMINS: [(i64, i64); 2] = [(1, 3), (2, 2)];

const ADMINS: &str =
    "SELECT conversation_id, user_id FROM members WHERE role = 'admin' ORDER BY conversation_id";

#[tokio::test]
async fn the_sqlite_migration_makes_each_groups_longest_standing_member_admin() -> anyhow::Result<()>
{
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
    let dir = tempfile::tempdir()?;
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("old.db"))
        .create_if_missing(true);
    let pool = SqlitePool::connect_with(options).await?;
    sqlx::raw_sql(include_str!("../../migrations/sqlite/0001_initial.sql"))
        .execute(&pool)
        .await?;
    sqlx::raw_sql(LEGACY_GROUPS).execute(&pool).await?;
    sqlx::raw_sql(
        "INSERT INTO conversations (kind, direct_key, created_at) VALUES ('direct', '1:2', 0)",
    )
    .execute(&pool)
    .await?;
    sqlx::raw_sql(LEGACY_MEMBERS).execute(&pool).await?;
    sqlx::raw_sql(include_str!("../../migrations/sqlite/0003_roles.sql"))
        .execute(&pool)
        .await?;
    let admins: Vec<(i64, i64)> = sqlx::query(ADMINS)
        .fetch_all(&pool)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    assert_eq!(admins, LEGACY_ADMINS.to_vec());
    Ok(())
}

#[tokio::test]
async fn the_postgres_migration_makes_each_groups_longest_standing_member_admin()
-> anyhow::Result<()> {
    let db = crate::fixtures::postgres_unmigrated().await?;
    sqlx::raw_sql(include_str!("../../migrations/postgres/0001_initial.sql"))
        .execute(&db.pool)
        .await?;
    sqlx::raw_sql(LEGACY_GROUPS).execute(&db.pool).await?;
    sqlx::raw_sql(
        "INSERT INTO conversations (kind, direct_low, direct_high, created_at)
         VALUES ('direct', 1, 2, 0)",
    )
    .execute(&db.pool)
    .await?;
    sqlx::raw_sql(LEGACY_MEMBERS).execute(&db.pool).await?;
    sqlx::raw_sql(include_str!("../../migrations/postgres/0003_roles.sql"))
        .execute(&db.pool)
        .await?;
    let admins: Vec<(i64, i64)> = sqlx::query(ADMINS)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    assert_eq!(admins, LEGACY_ADMINS.to_vec());
    Ok(())
}
