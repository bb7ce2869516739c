//! The TypeScript declarations of the wire types, for the web client.
//!
//! `web/src/protocol.ts` is generated from this module; the test
//! `typescript_bindings_are_current` fails when the checked-in file differs, and
//! `UPDATE_BINDINGS=1 cargo test -p chat-protocol` rewrites it.

use ts_rs::TS;

use crate::errors::*;
use crate::events::*;
use crate::http::*;
use crate::ids::*;
use crate::ws::*;

/// Every exported declaration, in one TypeScript module.
pub fn declarations() -> String {
    let decls = [
        UserId::decl(),
        ConversationId::decl(),
        MessageId::decl(),
        User::decl(),
        Me::decl(),
        UpdateMe::decl(),
        Message::decl(),
        Reaction::decl(),
        MessageEdited::decl(),
        MessageDeleted::decl(),
        ReactionChanged::decl(),
        ConversationKind::decl(),
        MemberRole::decl(),
        Member::decl(),
        Conversation::decl(),
        SignupRequest::decl(),
        LoginRequest::decl(),
        AuthResponse::decl(),
        RefreshResponse::decl(),
        CreateConversation::decl(),
        AddMembers::decl(),
        UpdateConversation::decl(),
        HistoryPage::decl(),
        SendMessage::decl(),
        EditMessage::decl(),
        SearchPage::decl(),
        SearchHit::decl(),
        Marked::decl(),
        ErrorCode::decl(),
        ErrorBody::decl(),
        ErrorDetail::decl(),
        Readiness::decl(),
        ClientFrame::decl(),
        ServerFrame::decl(),
    ];
    let mut out = String::from(
        "// Generated from crates/protocol by `UPDATE_BINDINGS=1 cargo test -p chat-protocol`.\n// Do not edit by hand.\n\n",
    );
    for decl in decls {
        out.push_str("export ");
        out.push_str(&decl);
        out.push_str("\n\n");
    }
    out.push_str(&format!(
        "export const MAX_BODY_CHARS = {};\nexport const MAX_FRAME_BYTES = {};\nexport const MAX_HISTORY_LIMIT = {};\nexport const MAX_SEARCH_CHARS = {};\nexport const MAX_REACTIONS_PER_MESSAGE = {};\nexport const CSRF_HEADER = \"{}\";\n",
        crate::MAX_BODY_CHARS,
        crate::MAX_FRAME_BYTES,
        crate::MAX_HISTORY_LIMIT,
        crate::MAX_SEARCH_CHARS,
        crate::MAX_REACTIONS_PER_MESSAGE,
        crate::CSRF_HEADER
    ));
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn typescript_bindings_are_current() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web/src/protocol.ts");
        let want = super::declarations();
        if std::env::var_os("UPDATE_BINDINGS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "web/src/protocol.ts is out of date: run `UPDATE_BINDINGS=1 cargo test -p chat-protocol`"
        );
    }
}
