//! The rules of group roles, decided once for every adapter: each adapter locks the
//! group, reads its [`Roster`] inside the change's transaction, asks the roster
//! whether the change is allowed (and whom a departure promotes), and only then
//! writes. So a refused change writes nothing, and two changes to one group cannot
//! both pass a check that only one of them may pass (the last two admins stepping
//! down at once).

use chat_protocol::UserId;
use chat_protocol::http::{ConversationKind, MemberRole};

use super::{GroupChangeError, StoreError, StoreResult};

/// The stored spelling of a role (`members.role`).
pub fn role_column(role: MemberRole) -> &'static str {
    match role {
        MemberRole::Admin => "admin",
        MemberRole::Member => "member",
    }
}

/// A role as stored; anything else is a corrupt row, never a default.
pub fn role_of(column: &str) -> StoreResult<MemberRole> {
    match column {
        "admin" => Ok(MemberRole::Admin),
        "member" => Ok(MemberRole::Member),
        other => Err(StoreError::Corrupt(format!(
            "unknown member role `{other}`"
        ))),
    }
}

/// One member as a roster holds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RosterEntry {
    pub user: UserId,
    pub role: MemberRole,
}

/// A conversation's kind and members with their roles, as one transaction read them,
/// longest-standing first (earliest `joined_at`, then smallest user id).
#[derive(Clone, Debug)]
pub struct Roster {
    pub kind: ConversationKind,
    pub members: Vec<RosterEntry>,
}

/// What a removal the roster allowed does besides deleting the member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removal {
    /// The member who became admin because the last admin left.
    pub promoted: Option<UserId>,
}

impl Roster {
    fn role(&self, user: UserId) -> Option<MemberRole> {
        self.members.iter().find(|m| m.user == user).map(|m| m.role)
    }

    /// `by` may change this group: it is a group, `by` is in it and administers it.
    pub fn check_admin(&self, by: UserId) -> Result<(), GroupChangeError> {
        self.check_member_of_group(by)?;
        match self.role(by) {
            Some(MemberRole::Admin) => Ok(()),
            _ => Err(GroupChangeError::NotAdmin),
        }
    }

    fn check_member_of_group(&self, by: UserId) -> Result<(), GroupChangeError> {
        if self.role(by).is_none() {
            return Err(GroupChangeError::Outsider);
        }
        if self.kind != ConversationKind::Group {
            return Err(GroupChangeError::NotAGroup);
        }
        Ok(())
    }

    /// `by` removes `user` (leaving when they are the same): anyone may leave, only an
    /// admin may remove someone else, and the last member may not leave. When the
    /// last admin goes, the longest-standing remaining member is promoted.
    pub fn plan_removal(&self, by: UserId, user: UserId) -> Result<Removal, GroupChangeError> {
        if by == user {
            self.check_member_of_group(by)?;
        } else {
            self.check_admin(by)?;
        }
        let Some(role) = self.role(user) else {
            return Err(GroupChangeError::NotMember(user));
        };
        let remaining = || self.members.iter().filter(|m| m.user != user);
        if remaining().next().is_none() {
            return Err(GroupChangeError::LastMember);
        }
        let admins_remain = remaining().any(|m| m.role == MemberRole::Admin);
        let promoted = if role == MemberRole::Admin && !admins_remain {
            remaining().next().map(|m| m.user)
        } else {
            None
        };
        Ok(Removal { promoted })
    }

    /// `by` (an admin) makes `add` admins and `remove` plain members: everyone named
    /// must be a member, and an admin must remain.
    pub fn plan_role_change(
        &self,
        by: UserId,
        add: &[UserId],
        remove: &[UserId],
    ) -> Result<(), GroupChangeError> {
        self.check_admin(by)?;
        if let Some(stranger) = add
            .iter()
            .chain(remove)
            .find(|user| self.role(**user).is_none())
        {
            return Err(GroupChangeError::NotMember(*stranger));
        }
        let admin_after = |m: &RosterEntry| {
            !remove.contains(&m.user) && (m.role == MemberRole::Admin || add.contains(&m.user))
        };
        if !self.members.iter().any(admin_after) {
            return Err(GroupChangeError::LastAdmin);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: UserId = UserId(1);
    const B: UserId = UserId(2);
    const C: UserId = UserId(3);
    const OUTSIDER: UserId = UserId(99);

    fn group(members: &[(UserId, MemberRole)]) -> Roster {
        Roster {
            kind: ConversationKind::Group,
            members: members
                .iter()
                .map(|&(user, role)| RosterEntry { user, role })
                .collect(),
        }
    }

    use MemberRole::{Admin, Member};

    #[test]
    fn anyone_may_leave_but_only_admins_remove_others() {
        let roster = group(&[(A, Admin), (B, Member), (C, Member)]);
        assert_eq!(roster.plan_removal(B, B).ok(), Some(Removal::default()));
        assert!(matches!(
            roster.plan_removal(B, C),
            Err(GroupChangeError::NotAdmin)
        ));
        assert!(roster.plan_removal(A, C).is_ok());
        assert!(matches!(
            roster.plan_removal(A, OUTSIDER),
            Err(GroupChangeError::NotMember(OUTSIDER))
        ));
        assert!(matches!(
            roster.plan_removal(OUTSIDER, OUTSIDER),
            Err(GroupChangeError::Outsider)
        ));
    }

    #[test]
    fn the_last_admin_leaving_promotes_the_longest_standing_member() {
        let roster = group(&[(B, Member), (A, Admin), (C, Member)]);
        assert_eq!(
            roster.plan_removal(A, A).ok().and_then(|r| r.promoted),
            Some(B)
        );
        // With another admin left, nobody is promoted.
        let roster = group(&[(A, Admin), (B, Member), (C, Admin)]);
        assert_eq!(roster.plan_removal(A, A).ok(), Some(Removal::default()));
    }

    #[test]
    fn the_last_member_cannot_leave() {
        let roster = group(&[(A, Admin)]);
        assert!(matches!(
            roster.plan_removal(A, A),
            Err(GroupChangeError::LastMember)
        ));
    }

    #[test]
    fn role_changes_need_an_admin_members_and_an_admin_left() {
        let roster = group(&[(A, Admin), (B, Member), (C, Member)]);
        assert!(roster.plan_role_change(A, &[B], &[]).is_ok());
        assert!(matches!(
            roster.plan_role_change(B, &[B], &[]),
            Err(GroupChangeError::NotAdmin)
        ));
        assert!(matches!(
            roster.plan_role_change(A, &[OUTSIDER], &[]),
            Err(GroupChangeError::NotMember(OUTSIDER))
        ));
        assert!(matches!(
            roster.plan_role_change(A, &[], &[A]),
            Err(GroupChangeError::LastAdmin)
        ));
        // Stepping down is fine once someone else is made admin.
        assert!(roster.plan_role_change(A, &[B], &[A]).is_ok());
    }

    #[test]
    fn a_direct_conversation_has_no_admins_and_no_membership_changes() {
        let roster = Roster {
            kind: ConversationKind::Direct,
            members: vec![
                RosterEntry {
                    user: A,
                    role: Member,
                },
                RosterEntry {
                    user: B,
                    role: Member,
                },
            ],
        };
        assert!(matches!(
            roster.plan_removal(A, A),
            Err(GroupChangeError::NotAGroup)
        ));
        assert!(matches!(
            roster.plan_role_change(A, &[A], &[]),
            Err(GroupChangeError::NotAGroup)
        ));
    }

    #[test]
    fn roles_are_stored_by_name_and_anything_else_is_corrupt() {
        for role in [Admin, Member] {
            assert_eq!(role_of(role_column(role)).ok(), Some(role));
        }
        assert!(matches!(role_of("owner"), Err(StoreError::Corrupt(_))));
    }
}
