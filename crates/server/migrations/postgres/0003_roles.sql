-- Group roles: each member of a group is an `admin` or a plain `member`. Admins add
-- and remove members, rename the group and make or unmake admins; a group always has
-- an admin while it has members. Members of direct conversations are all `member`.
-- Changes to a group's members and roles lock its `conversations` row first, so two
-- of them on one group never interleave (the last two admins stepping down at once).
ALTER TABLE members ADD COLUMN role TEXT NOT NULL DEFAULT 'member'
    CHECK (role IN ('admin', 'member'));

-- Groups made before roles existed: their longest-standing member (earliest joined;
-- on a tie the smallest user id, the rule the server follows when the last admin
-- leaves) becomes the admin.
UPDATE members SET role = 'admin'
WHERE conversation_id IN (SELECT id FROM conversations WHERE kind = 'group')
  AND user_id = (
      SELECT first.user_id FROM members first
      WHERE first.conversation_id = members.conversation_id
      ORDER BY first.joined_at, first.user_id
      LIMIT 1
  );
