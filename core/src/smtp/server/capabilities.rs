//! The EHLO (and LMTP's LHLO) capability list of a listener (RFC 1869): what this
//! session offers now.

use super::config::{ListenerKind, SessionConfig, TlsMode};

/// Whether AUTH is offered: on submission only (never on MX or LMTP), and once TLS is
/// active unless the configuration allows plaintext AUTH (tests).
pub(super) fn auth_offered(config: &SessionConfig, tls_active: bool) -> bool {
    config.kind == ListenerKind::Submission && (tls_active || !config.auth_requires_tls)
}

/// Whether STARTTLS is offered: a certificate is configured and TLS is not yet active;
/// never on LMTP, which runs on a trusted network or loopback (see `ListenerKind::Lmtp`).
pub(super) fn starttls_offered(config: &SessionConfig, tls_active: bool) -> bool {
    config.kind != ListenerKind::Lmtp && config.tls == TlsMode::StartTlsOffered && !tls_active
}

/// The capability lines after the greeting line of the EHLO reply, in the order of
/// spec/REPLIES.md.
pub(super) fn capabilities(config: &SessionConfig, tls_active: bool) -> Vec<String> {
    let mut lines = vec![
        "PIPELINING".to_owned(),
        format!("SIZE {}", config.limits.message_size),
        "8BITMIME".to_owned(),
        "SMTPUTF8".to_owned(),
        "ENHANCEDSTATUSCODES".to_owned(),
        "CHUNKING".to_owned(),
        "DSN".to_owned(),
    ];
    if starttls_offered(config, tls_active) {
        lines.push("STARTTLS".to_owned());
    }
    if auth_offered(config, tls_active) {
        lines.push("AUTH PLAIN LOGIN".to_owned());
    }
    lines
}
