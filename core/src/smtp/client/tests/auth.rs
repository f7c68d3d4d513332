//! AUTH to a relay (RFC 4954): PLAIN after STARTTLS, LOGIN where only LOGIN is
//! offered, no credentials without TLS unless allowed, 535 permanent and 454
//! temporary, and a password that never shows in debug output.

use super::*;

const OK: &str = "250 2.0.0 ok\r\n";
const GREETING: &str = "220 relay.example ESMTP\r\n";
const BYE: &str = "221 2.0.0 bye\r\n";
const AUTHENTICATED: &str = "235 2.7.0 Authentication successful\r\n";

fn relay(tls: TlsPolicy, plaintext_allowed: bool) -> ClientConfig {
    ClientConfig {
        auth: Some(ClientAuth {
            username: "relay-user".to_owned(),
            password: Password::new("s3cret pass"),
            plaintext_allowed,
        }),
        ..config(Protocol::Smtp, tls)
    }
}

#[test]
fn auth_plain_after_starttls() {
    let before = ehlo(&["PIPELINING", "STARTTLS"]);
    let after = ehlo(&["PIPELINING", "AUTH LOGIN PLAIN"]);
    let scripted = Scripted::new(
        relay(TlsPolicy::Opportunistic, false),
        &[
            GREETING,
            &before,
            "220 2.0.0 ready for TLS\r\n",
            &after,
            AUTHENTICATED,
            OK,
            OK,
            "354 go\r\n",
            OK,
            BYE,
        ],
    )
    .run(vec![message("Q1", &["bob@example.com"], b"hi\r\n")]);
    assert!(scripted.events.contains(&ClientEvent::Authenticated));
    assert_eq!(kinds(scripted.only_report()), "d");
    // base64("\0relay-user\0s3cret pass"), sent once TLS is up.
    assert!(
        scripted
            .sent()
            .contains("AUTH PLAIN AHJlbGF5LXVzZXIAczNjcmV0IHBhc3M=\r\n")
    );
    insta::assert_snapshot!(scripted.render());
}

#[test]
fn auth_login_where_plain_is_not_offered() {
    let after = ehlo(&["AUTH=LOGIN"]);
    let scripted = Scripted::new(
        relay(TlsPolicy::Opportunistic, false),
        &[
            GREETING,
            &ehlo(&["STARTTLS"]),
            "220 go\r\n",
            &after,
            "334 VXNlcm5hbWU6\r\n",
            "334 UGFzc3dvcmQ6\r\n",
            AUTHENTICATED,
            OK,
            OK,
            "354 go\r\n",
            OK,
            BYE,
        ],
    )
    .run(vec![message("Q1", &["bob@example.com"], b"hi\r\n")]);
    assert_eq!(kinds(scripted.only_report()), "d");
    let sent = scripted.sent();
    let login = sent.find("AUTH LOGIN\r\ncmVsYXktdXNlcg==\r\nczNjcmV0IHBhc3M=\r\nMAIL");
    assert!(login.is_some(), "{sent}");
    insta::assert_snapshot!(scripted.render());
}

/// A session with a relay that offers AUTH PLAIN after STARTTLS and answers it
/// with `reply`, for one message to `recipients`.
fn auth_answered(reply: &str, recipients: &[&str]) -> Scripted {
    Scripted::new(
        relay(TlsPolicy::Opportunistic, false),
        &[
            GREETING,
            &ehlo(&["STARTTLS"]),
            "220 go\r\n",
            &ehlo(&["AUTH PLAIN"]),
            reply,
            BYE,
        ],
    )
    .run(vec![message("Q1", recipients, b"hi\r\n")])
}

#[test]
fn a_535_fails_the_recipients_permanently() {
    let scripted = auth_answered(
        "535 5.7.8 Authentication credentials invalid\r\n",
        &["bob@example.com", "carol@example.com"],
    );
    assert_eq!(kinds(scripted.only_report()), "pp");
    assert_eq!(
        status(&scripted.only_report().recipients[0]),
        EnhancedStatus::new(5, 7, 8)
    );
    assert_eq!(
        failed_kind(&scripted),
        Some(SessionFailureKind::AuthRejected)
    );
    assert!(!scripted.sent().contains("MAIL FROM"));
    assert!(scripted.sent().ends_with("QUIT\r\n"));
    insta::assert_snapshot!(scripted.render());
}

#[test]
fn a_454_is_a_temporary_session_failure() {
    let scripted = auth_answered(
        "454 4.7.0 Temporary authentication failure\r\n",
        &["bob@example.com"],
    );
    assert_eq!(kinds(scripted.only_report()), "u");
    assert_eq!(
        status(&scripted.only_report().recipients[0]),
        EnhancedStatus::new(4, 7, 0)
    );
    assert_eq!(failed_kind(&scripted), Some(SessionFailureKind::AuthFailed));
}

#[test]
fn no_credentials_on_a_plaintext_connection_unless_the_path_allows_it() {
    // The relay offers no STARTTLS: the credentials stay home.
    let refused = Scripted::new(
        relay(TlsPolicy::Opportunistic, false),
        &[GREETING, &ehlo(&["AUTH PLAIN"]), BYE],
    )
    .run(vec![message("Q1", &["bob@example.com"], b"hi\r\n")]);
    assert!(!refused.sent().contains("AUTH"));
    assert_eq!(kinds(refused.only_report()), "u");
    assert_eq!(failed_kind(&refused), Some(SessionFailureKind::AuthFailed));

    // Allowed explicitly (a relay on a trusted network): AUTH in plain text.
    let allowed = Scripted::new(
        relay(TlsPolicy::Disabled, true),
        &[
            GREETING,
            &ehlo(&["AUTH PLAIN"]),
            AUTHENTICATED,
            OK,
            OK,
            "354 go\r\n",
            OK,
            BYE,
        ],
    )
    .run(vec![message("Q1", &["bob@example.com"], b"hi\r\n")]);
    assert!(allowed.sent().contains("AUTH PLAIN "));
    assert_eq!(kinds(allowed.only_report()), "d");
}

#[test]
fn a_relay_without_a_usable_mechanism_is_a_temporary_failure() {
    let scripted = Scripted::new(
        relay(TlsPolicy::Opportunistic, false),
        &[
            GREETING,
            &ehlo(&["STARTTLS"]),
            "220 go\r\n",
            &ehlo(&["AUTH CRAM-MD5"]),
            BYE,
        ],
    )
    .run(vec![message("Q1", &["bob@example.com"], b"hi\r\n")]);
    assert!(!scripted.sent().contains("AUTH"));
    assert_eq!(kinds(scripted.only_report()), "u");
    assert_eq!(failed_kind(&scripted), Some(SessionFailureKind::AuthFailed));
}

#[test]
fn the_password_never_shows_in_debug_output() {
    let config = relay(TlsPolicy::Required, false);
    let text = format!("{config:?}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("relay-user"));
    let session = ClientSession::new(Instant::from_millis(0), config);
    assert!(!format!("{session:?}").contains("s3cret"));
}

#[test]
fn a_password_debugs_as_redacted_not_as_nothing() {
    // Debug output shows that a password is set, never what it is.
    assert_eq!(
        format!("{:?}", Password::new("s3cret pass")),
        "Password(<redacted>)"
    );
}

#[test]
fn each_auth_login_step_waits_the_command_timeout_for_its_answer() {
    // The server does not answer AUTH LOGIN, or asks for the username, or for the
    // password too, and then falls silent.
    let prompts = ["334 VXNlcm5hbWU6\r\n", "334 UGFzc3dvcmQ6\r\n"];
    let login = "AUTH LOGIN\r\ncmVsYXktdXNlcg==\r\nczNjcmV0IHBhc3M=\r\n";
    for answered in 0..=prompts.len() {
        let offered = ehlo(&["AUTH=LOGIN"]);
        let mut replies = vec![GREETING, offered.as_str()];
        replies.extend(prompts.iter().take(answered));
        let mut scripted = Scripted::new(relay(TlsPolicy::Disabled, true), &replies)
            .run(vec![message("Q1", &["bob@example.com"], b"hi\r\n")]);
        let sent = scripted.sent();
        let lines_sent = 1 + answered;
        let expected: String = login.split_inclusive("\r\n").take(lines_sent).collect();
        assert!(sent.ends_with(&expected), "{sent}");
        assert_eq!(
            scripted.client.next_deadline(),
            Some(scripted.now + minutes(5))
        );
        scripted.tick_at_deadline();
        assert_eq!(failed_kind(&scripted), Some(SessionFailureKind::Timeout));
    }
}
