//! Authentication (DESIGN.md §7): refresh rotation and family revocation, the CSRF
//! header, logout, expired and tampered access tokens, and login throttling.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chat_protocol::http::{AuthResponse, LoginRequest, RefreshResponse, SignupRequest, User};
use chat_protocol::ws::{ClientFrame, ServerFrame};
use chat_test_support::api::{Api, Reply};
use chat_test_support::server::Endpoint;
use chat_test_support::users::PASSWORD;
use chat_test_support::wait::RECEIVE_TIMEOUT;
use chat_test_support::ws::{Event, Ws};
use reqwest::StatusCode;
use tokio::time::Instant;

use crate::api::refresh_set_cookie;
use crate::chat;

async fn login(api: &Api, username: &str, password: &str) -> Reply {
    api.post(
        "/auth/login",
        &LoginRequest {
            username: username.into(),
            password: password.into(),
        },
    )
    .await
}

/// Connects, authenticates with `token` and returns the close code.
async fn ws_close_code_for_token(endpoint: &Endpoint, token: &str) -> Option<u16> {
    let mut ws = Ws::connect(endpoint).await;
    ws.send(&ClientFrame::Auth {
        token: token.to_owned(),
    })
    .await;
    ws.expect_close().await
}

#[tokio::test]
async fn refresh_rotates_the_cookie_and_returns_a_working_access_token() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let before = alice.api.refresh_cookie().expect("a refresh cookie");

    let reply = alice.api.refresh().await;
    let refreshed: RefreshResponse = reply.expect(StatusCode::OK);
    assert!(refreshed.expires_in > 0 && refreshed.expires_in <= 900);
    let cookie = refresh_set_cookie(&reply);
    assert!(cookie.contains("httponly") && cookie.contains("samesite=strict"));
    let after = alice
        .api
        .refresh_cookie()
        .expect("a rotated refresh cookie");
    assert_ne!(before, after, "every refresh rotates the token");

    let me: User = alice
        .api
        .with_token(&refreshed.access_token)
        .get("/me")
        .await
        .expect(StatusCode::OK);
    assert_eq!(me.id, alice.id());

    // The rotated token refreshes again.
    alice
        .api
        .refresh()
        .await
        .expect::<RefreshResponse>(StatusCode::OK);
}

#[tokio::test]
async fn refresh_and_logout_require_the_csrf_header() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    for path in ["/auth/refresh", "/auth/logout"] {
        let reply = alice
            .api
            .send(
                format!("POST {path} without the CSRF header"),
                alice.api.request(reqwest::Method::POST, path),
            )
            .await;
        reply.expect_error(StatusCode::FORBIDDEN, "csrf_header_missing");
    }
    // Nothing changed: the session still refreshes.
    alice
        .api
        .refresh()
        .await
        .expect::<RefreshResponse>(StatusCode::OK);
}

#[tokio::test]
async fn refresh_without_a_cookie_or_with_an_unknown_one_is_refused() {
    let server = chat().start().await;
    server
        .anonymous()
        .refresh()
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    server
        .anonymous()
        .refresh_with_cookie("bm90LWEtcmVhbC10b2tlbg")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
}

#[tokio::test]
async fn a_refresh_token_used_twice_revokes_the_whole_family() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let first = alice.api.refresh_cookie().expect("a refresh cookie");

    alice
        .api
        .refresh()
        .await
        .expect::<RefreshResponse>(StatusCode::OK);
    let newest = alice.api.refresh_cookie().expect("a rotated cookie");
    assert_ne!(first, newest);

    // A thief replays the rotated-away token: refused, and the family is revoked.
    alice
        .api
        .refresh_with_cookie(&first)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    alice
        .api
        .refresh_with_cookie(&newest)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");

    // Another session of the same user (another family) is untouched.
    let other = server.anonymous();
    login(&other, "alice", PASSWORD)
        .await
        .expect::<AuthResponse>(StatusCode::OK);
    other
        .refresh()
        .await
        .expect::<RefreshResponse>(StatusCode::OK);
}

#[tokio::test]
async fn logout_revokes_the_session_and_clears_the_cookie() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let token = alice.api.refresh_cookie().expect("a refresh cookie");
    let reply = alice
        .api
        .send(
            "POST /auth/logout".into(),
            alice
                .api
                .request(reqwest::Method::POST, "/auth/logout")
                .header(chat_protocol::CSRF_HEADER, "1"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    let cleared = refresh_set_cookie(&reply);
    assert!(
        cleared.contains("max-age=0") || cleared.contains("expires=thu, 01 jan 1970"),
        "logout should expire the cookie: {cleared}"
    );
    assert!(alice.api.refresh_cookie().is_none(), "the jar dropped it");
    alice
        .api
        .refresh_with_cookie(&token)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let server = chat().start().await;
    server.signup("alice").await;
    let api = server.anonymous();
    login(&api, "alice", "wrong password")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    login(&api, "nobody", "wrong password")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert!(api.refresh_cookie().is_none(), "no session was opened");
}

#[tokio::test]
async fn an_expired_access_token_is_refused_but_refresh_still_works() {
    let server = chat()
        .env(&[("CHAT_ACCESS_TOKEN_TTL_SECS", "1")])
        .start()
        .await;
    let alice = server.signup("alice").await;
    let reply = login(&server.anonymous(), "alice", PASSWORD).await;
    let auth: AuthResponse = reply.expect(StatusCode::OK);
    assert_eq!(auth.expires_in, 1);

    // Expiry has a one-second granularity; allow a little more than that.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let reply = alice.get("/me").await;
        if reply.status == StatusCode::UNAUTHORIZED {
            reply.expect_error(StatusCode::UNAUTHORIZED, "unauthenticated");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a 1-second token was still accepted after 8 seconds (too much leeway?)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ws_close_code_for_token(&server.endpoint, &alice.token).await,
        Some(chat_protocol::close::UNAUTHENTICATED)
    );

    let refreshed: RefreshResponse = alice.api.refresh().await.expect(StatusCode::OK);
    let me: User = alice
        .api
        .with_token(&refreshed.access_token)
        .get("/me")
        .await
        .expect(StatusCode::OK);
    assert_eq!(me.id, alice.id());
}

/// The token with its claims re-encoded after `edit`, keeping the old signature.
fn with_edited_claims(token: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "the access token is a JWT");
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("base64 claims"))
            .expect("JSON claims");
    edit(&mut claims);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

#[tokio::test]
async fn a_tampered_token_is_refused_over_http_and_websocket() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    let bob = server.signup("bob").await;

    let parts: Vec<&str> = alice.token.split('.').collect();
    assert_eq!(parts.len(), 3, "the access token is a JWT");
    let as_bob = with_edited_claims(&alice.token, |claims| {
        claims["sub"] = match &claims["sub"] {
            serde_json::Value::Number(_) => serde_json::json!(bob.id().0),
            _ => serde_json::json!(bob.id().to_string()),
        };
    });
    let longer = with_edited_claims(&alice.token, |claims| {
        if let Some(exp) = claims["exp"].as_i64() {
            claims["exp"] = serde_json::json!(exp + 86_400);
        }
    });
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let mut flipped_signature = parts[2].to_owned();
    let last = flipped_signature.pop().unwrap();
    flipped_signature.push(if last == 'A' { 'B' } else { 'A' });
    let bad_signature = format!("{}.{}.{flipped_signature}", parts[0], parts[1]);
    let truncated = format!("{}.{}", parts[0], parts[1]);

    for forged in [&as_bob, &longer, &unsigned, &bad_signature, &truncated] {
        server
            .anonymous()
            .with_token(forged)
            .get("/me")
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "unauthenticated");
        assert_eq!(
            ws_close_code_for_token(&server.endpoint, forged).await,
            Some(chat_protocol::close::UNAUTHENTICATED),
            "the forged token {forged} opened a socket"
        );
    }
    // Nothing changed: the real tokens still work.
    let me: User = alice.get("/me").await.expect(StatusCode::OK);
    assert_eq!(me.id, alice.id());
    let mut ws = bob.connect().await;
    ws.round_trip().await;
}

#[tokio::test]
async fn a_token_signed_by_another_server_is_refused() {
    let ours = chat()
        .env(&[("CHAT_JWT_SECRET", "ours-0123456789abcdef0123456789abcdef")])
        .start()
        .await;
    let theirs = chat()
        .env(&[("CHAT_JWT_SECRET", "theirs-0123456789abcdef0123456789abcdef")])
        .start()
        .await;
    ours.signup("alice").await;
    let impostor = theirs.signup("alice").await;
    ours.anonymous()
        .with_token(&impostor.token)
        .get("/me")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(
        ws_close_code_for_token(&ours.endpoint, &impostor.token).await,
        Some(chat_protocol::close::UNAUTHENTICATED)
    );
}

#[tokio::test]
async fn login_brute_force_is_throttled_per_account() {
    let server = chat()
        .env(&[("CHAT_LOGIN_FAILURES_PER_ACCOUNT", "3")])
        .start()
        .await;
    let alice = server.signup("alice").await;
    server.signup("bob").await;
    let attacker = server.anonymous();
    for attempt in 1..=3 {
        let reply = login(&attacker, "alice", &format!("guess number {attempt}")).await;
        reply.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let reply = login(&attacker, "alice", "guess number 4").await;
    reply.expect_error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    let retry_after: u64 = reply
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(retry_after > 0);

    // Even the right password is refused while the account is locked...
    login(&attacker, "alice", PASSWORD)
        .await
        .expect_error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    // ...but nothing else changed: alice's session works, bob logs in from the same address.
    let me: User = alice.get("/me").await.expect(StatusCode::OK);
    assert_eq!(me.id, alice.id());
    alice
        .api
        .refresh()
        .await
        .expect::<RefreshResponse>(StatusCode::OK);
    login(&server.anonymous(), "bob", PASSWORD)
        .await
        .expect::<AuthResponse>(StatusCode::OK);
}

#[tokio::test]
async fn login_brute_force_is_throttled_per_address() {
    let server = chat()
        .env(&[
            ("CHAT_LOGIN_FAILURES_PER_ADDRESS", "4"),
            ("CHAT_LOGIN_FAILURES_PER_ACCOUNT", "100"),
        ])
        .start()
        .await;
    for name in ["alice", "bob", "carol", "dave"] {
        server.signup(name).await;
    }
    let attacker = server.anonymous();
    for name in ["alice", "bob", "carol", "nobody"] {
        login(&attacker, name, "a wrong password")
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let reply = login(&attacker, "dave", "a wrong password").await;
    reply.expect_error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    assert!(
        reply.header("retry-after").is_some(),
        "429 carries Retry-After"
    );
}

#[tokio::test]
async fn signups_are_throttled_per_address() {
    let server = chat()
        .env(&[("CHAT_SIGNUPS_PER_MINUTE", "2")])
        .start()
        .await;
    server.signup("alice").await;
    server.signup("bob").await;
    let reply = server
        .anonymous()
        .post(
            "/auth/signup",
            &SignupRequest {
                username: "carol".into(),
                password: PASSWORD.into(),
                display_name: None,
            },
        )
        .await;
    reply.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(
        reply.header("retry-after").is_some(),
        "429 carries Retry-After"
    );
    login(&server.anonymous(), "carol", PASSWORD)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test]
async fn an_open_socket_is_closed_with_4401_when_its_token_expires() {
    let server = chat()
        .env(&[("CHAT_ACCESS_TOKEN_TTL_SECS", "1")])
        .start()
        .await;
    let alice = server.signup("alice").await;
    // With one-second tokens a token may already be stale when it arrives: take fresh
    // ones until a socket opens.
    let mut token = alice.token.clone();
    let mut ws = None;
    for _ in 0..5 {
        let mut attempt = Ws::connect(&server.endpoint).await;
        attempt
            .send(&ClientFrame::Auth {
                token: token.clone(),
            })
            .await;
        if let Event::Frame(ServerFrame::Ready { .. }) = attempt.next_event(RECEIVE_TIMEOUT).await {
            ws = Some(attempt);
            break;
        }
        let refreshed: RefreshResponse = alice.api.refresh().await.expect(StatusCode::OK);
        token = refreshed.access_token;
    }
    let mut ws = ws.expect("a socket opens with a fresh one-second token");
    // The close comes within the token's second (plus the granularity of `exp`).
    assert_eq!(
        ws.expect_close().await,
        Some(chat_protocol::close::UNAUTHENTICATED)
    );
    // A fresh token opens a fresh socket.
    let refreshed: RefreshResponse = alice.api.refresh().await.expect(StatusCode::OK);
    let mut again = Ws::connect(&server.endpoint).await;
    again.authenticate(&refreshed.access_token).await;
    again.round_trip().await;
}

/// A sign-up that claims, in `X-Forwarded-For`, to come from wherever it likes; the
/// proxy in front appended `seen_by_proxy`.
async fn signup_behind_proxy(
    server: &chat_test_support::server::Server,
    username: &str,
    claimed: &str,
    seen_by_proxy: &str,
) -> Reply {
    let api = server.anonymous();
    let request = api
        .request(reqwest::Method::POST, "/auth/signup")
        .header("x-forwarded-for", format!("{claimed}, {seen_by_proxy}"))
        .json(&SignupRequest {
            username: username.into(),
            password: PASSWORD.into(),
            display_name: None,
        });
    api.send(format!("sign-up of {username}"), request).await
}

#[tokio::test]
async fn behind_a_proxy_a_client_cannot_pick_its_own_address_to_dodge_a_limit() {
    let server = chat()
        .env(&[
            ("CHAT_SIGNUPS_PER_MINUTE", "2"),
            ("CHAT_TRUST_FORWARDED_FOR", "true"),
        ])
        .start()
        .await;
    // One client behind the proxy (203.0.113.9) writes a new address each time.
    for (name, claimed) in [("alice", "1.1.1.1"), ("bob", "2.2.2.2")] {
        signup_behind_proxy(&server, name, claimed, "203.0.113.9")
            .await
            .expect_success();
    }
    signup_behind_proxy(&server, "carol", "3.3.3.3", "203.0.113.9")
        .await
        .expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Another client, as the proxy saw it, has its own allowance.
    signup_behind_proxy(&server, "dave", "203.0.113.9", "198.51.100.7")
        .await
        .expect_success();
}

#[tokio::test]
async fn a_burst_beyond_the_hashing_queue_gets_503_with_retry_after_and_changes_nothing() {
    // One hash at a time and one waiting: of a burst, the third concurrent request on
    // is refused. One failed login locks an account here, so a refusal that counted
    // as a failure would show (the final login below).
    let server = chat()
        .env(&[
            ("CHAT_PASSWORD_HASH_THREADS", "1"),
            ("CHAT_PASSWORD_HASH_QUEUE", "1"),
            ("CHAT_SIGNUPS_PER_MINUTE", "1000"),
            ("CHAT_LOGIN_FAILURES_PER_ACCOUNT", "1"),
        ])
        .start()
        .await;
    server.signup("alice").await;
    let names: Vec<String> = (0..10).map(|i| format!("newcomer{i}")).collect();
    let signups = names.iter().map(|name| {
        let api = server.anonymous();
        async move {
            let request = SignupRequest {
                username: name.clone(),
                password: PASSWORD.into(),
                display_name: None,
            };
            (name.clone(), api.post("/auth/signup", &request).await)
        }
    });
    let logins = (0..10).map(|_| {
        let api = server.anonymous();
        async move { login(&api, "alice", PASSWORD).await }
    });
    let (signups, logins) = tokio::join!(
        futures::future::join_all(signups),
        futures::future::join_all(logins)
    );

    let mut refused = 0;
    let mut refused_names = Vec::new();
    let replies = signups
        .iter()
        .map(|(name, reply)| (Some(name), reply))
        .chain(logins.iter().map(|reply| (None, reply)));
    for (name, reply) in replies {
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            reply.expect_error(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
            let retry_after: u64 = reply
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .expect("a 503 carries Retry-After in seconds");
            assert!((1..=60).contains(&retry_after), "{retry_after}");
            refused += 1;
            refused_names.extend(name.cloned());
        } else if name.is_some() {
            reply.expect::<AuthResponse>(StatusCode::CREATED);
        } else if reply.status == StatusCode::TOO_MANY_REQUESTS {
            // Each login reserves one of the account's attempts while its password is
            // checked; with one attempt allowed, a login that finds it reserved by
            // another in flight is told to come back. Given back after, as below.
            reply.expect_error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
        } else {
            reply.expect::<AuthResponse>(StatusCode::OK);
        }
    }
    assert!(
        refused > 0,
        "a burst of 20 beyond a queue of 1 was all served"
    );

    // A refused sign-up made no user (the name is still free); a refused login was not
    // counted as a failure (alice is not locked out).
    for name in &refused_names {
        let request = SignupRequest {
            username: name.clone(),
            password: PASSWORD.into(),
            display_name: None,
        };
        server
            .anonymous()
            .post("/auth/signup", &request)
            .await
            .expect::<AuthResponse>(StatusCode::CREATED);
    }
    login(&server.anonymous(), "alice", PASSWORD)
        .await
        .expect::<AuthResponse>(StatusCode::OK);
}

/// Parallel guesses cannot all pass one check before any is counted: each login
/// reserves an attempt before its password is checked (and a success gives it back).
#[tokio::test]
async fn twenty_parallel_wrong_logins_for_one_account_get_at_most_five_checked() {
    let server = chat().start().await;
    let alice = server.signup("alice").await;
    server.signup("bob").await;
    let attacker = server.anonymous();
    let guesses: Vec<String> = (0..20).map(|i| format!("parallel guess {i}")).collect();
    let replies =
        futures::future::join_all(guesses.iter().map(|g| login(&attacker, "alice", g))).await;
    let mut checked = 0;
    for reply in &replies {
        if reply.status == StatusCode::UNAUTHORIZED {
            reply.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
            checked += 1;
        } else {
            reply.expect_error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
            assert!(reply.header("retry-after").is_some(), "{}", reply.text);
        }
    }
    assert_eq!(
        checked, 5,
        "the account allows 5 failed logins in its window, however they arrive"
    );
    // The right password is refused too until the window lets one more attempt in.
    login(&attacker, "alice", PASSWORD)
        .await
        .expect_error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    // Alice's session is untouched, and other accounts log in (from the same address).
    let me: User = alice.get("/me").await.expect(StatusCode::OK);
    assert_eq!(me.id, alice.id());
    for _ in 0..3 {
        login(&attacker, "bob", PASSWORD)
            .await
            .expect::<AuthResponse>(StatusCode::OK);
    }
}

/// A successful login gives its reserved attempt back: logging in often never locks
/// an account, and failures are counted alone.
#[tokio::test]
async fn successful_logins_do_not_use_up_the_failed_login_allowance() {
    let server = chat()
        .env(&[("CHAT_LOGIN_FAILURES_PER_ACCOUNT", "2")])
        .start()
        .await;
    server.signup("alice").await;
    let client = server.anonymous();
    for _ in 0..5 {
        login(&client, "alice", PASSWORD)
            .await
            .expect::<AuthResponse>(StatusCode::OK);
    }
    for _ in 0..2 {
        login(&client, "alice", "a wrong password")
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    login(&client, "alice", PASSWORD)
        .await
        .expect_error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
}
