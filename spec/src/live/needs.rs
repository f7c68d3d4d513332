//! Whether a vector can be replayed against a live server, and if not, why not.
//!
//! In process, the replay is the session's driver: it answers every request,
//! injects TLS outcomes, moves the clock, seeds the store. A live server is its
//! own driver, so a vector that scripts any of that cannot be replayed there. Most
//! of it is found in the vector's steps and header; what cannot be seen there a
//! vector declares with `live: skip REASON`.

use crate::vector::{
    Action, Answer, CredentialAnswer, DriverInput, Listener, MaildropAnswer, Vector,
};
use sluice_core::smtp::server::TlsMode;

/// What the live run can do, from its command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Abilities {
    /// `--user` and `--password` were given: `D: credentials valid` steps can be
    /// replayed with a real account's credentials.
    pub(crate) account: bool,
    /// The connection starts with TLS (`--tls implicit`).
    pub(crate) implicit_tls: bool,
}

/// Why `vector` cannot run against a live server, or `None` when it can.
pub(crate) fn skip_reason(vector: &Vector, can: Abilities) -> Option<String> {
    if let Some(reason) = &vector.live_skip {
        return Some(reason.clone());
    }
    let implicit = vector.tls == TlsMode::Implicit;
    if implicit != can.implicit_tls {
        return Some(if implicit {
            "needs implicit TLS (run with --tls implicit)".to_string()
        } else {
            "a plaintext-first listener (run without --tls implicit)".to_string()
        });
    }
    if !vector.settings.is_empty() {
        return Some(format!(
            "needs the server configured with `{}`",
            vector.settings.join("`, `")
        ));
    }
    if !vector.messages.is_empty() {
        return Some("needs a maildrop fixture (`message:` lines)".to_string());
    }
    if !vector.imap_fixture.is_empty() {
        return Some("needs a mailbox fixture (`folder:`/`deliver:` lines)".to_string());
    }
    if sends_during_handshake(vector) {
        return Some(
            "sends plaintext while the TLS handshake is pending (the live run does the handshake at once)"
                .to_string(),
        );
    }
    vector
        .steps
        .iter()
        .find_map(|step| step_need(&step.action, can))
}

/// Client bytes between `S: <starttls>` and the handshake's outcome: in process
/// the driver withholds the handshake; a live run has already done it.
fn sends_during_handshake(vector: &Vector) -> bool {
    let mut pending = false;
    for step in &vector.steps {
        match &step.action {
            Action::Expect(crate::vector::Expect::StartTls) => pending = true,
            Action::Driver(DriverInput::TlsEstablished | DriverInput::TlsFailed) => pending = false,
            Action::Send { .. } if pending => return true,
            _ => {}
        }
    }
    false
}

/// What one step needs that a live server cannot give.
fn step_need(action: &Action, can: Abilities) -> Option<String> {
    let scripted = |what: &str| Some(format!("scripts {what}"));
    match action {
        Action::Send { .. } | Action::Expect(_) | Action::Check(_) => None,
        Action::Advance(_) => Some("moves the session's clock (`T:` steps)".to_string()),
        Action::Driver(input) => match input {
            DriverInput::Credentials(Answer::Give(CredentialAnswer::Valid { .. })) => {
                (!can.account).then(|| "needs an account (--user and --password)".to_string())
            }
            // A wrong password is refused by any server.
            DriverInput::Credentials(Answer::Give(CredentialAnswer::Invalid)) => None,
            DriverInput::Credentials(_) => scripted("a credential check's answer"),
            DriverInput::Recipient(_) => scripted("a recipient verdict"),
            DriverInput::Store(_) => scripted("the store's answer to a message"),
            // An empty maildrop opens on any server; its contents would be a fixture.
            DriverInput::Maildrop(Answer::Give(MaildropAnswer::Open)) => None,
            DriverInput::Maildrop(_) => scripted("the maildrop's answer"),
            DriverInput::Read(_) => scripted("a message read"),
            DriverInput::Commit(_) => scripted("the commit of deletions"),
            DriverInput::Mailbox(_) => scripted("the mailbox store's answer"),
            DriverInput::MailboxChanged | DriverInput::Deliver { .. } => {
                Some("needs another session's changes injected".to_string())
            }
            // The live run does a real handshake at `S: <starttls>`.
            DriverInput::TlsEstablished => None,
            DriverInput::TlsFailed => scripted("a failed TLS handshake"),
            DriverInput::PeerClosed => None,
            DriverInput::Shutdown => scripted("a server shutdown"),
        },
    }
}

/// The listeners `--protocol NAME` replays.
pub(crate) fn listeners_of(protocol: &str) -> Option<&'static [Listener]> {
    Some(match protocol {
        "smtp" => &[Listener::Mx, Listener::Submission, Listener::Submissions],
        "lmtp" => &[Listener::Lmtp],
        "pop3" => &[Listener::Pop3, Listener::Pop3s],
        "imap" => &[Listener::Imap, Listener::Imaps],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn vector(header: &str, steps: &str) -> Vector {
        let text = format!("# t\nproves: RFC 1 §1\n{header}{steps}");
        Vector::parse(Path::new("t.vector"), &text).unwrap()
    }

    const PLAIN: Abilities = Abilities {
        account: false,
        implicit_tls: false,
    };

    #[test]
    fn a_plain_dialogue_runs() {
        let v = vector(
            "listener: pop3\n",
            "S: +OK *\nC: QUIT\nS: +OK *\nS: <close>\n",
        );
        assert_eq!(skip_reason(&v, PLAIN), None);
    }

    #[test]
    fn driver_control_is_a_skip_with_its_reason() {
        let cases = [
            ("listener: mx\n", "S: 220\nT: +5min\n", "clock"),
            (
                "listener: mx\nset: limits.recipients = 2\n",
                "S: 220\n",
                "limits.recipients",
            ),
            (
                "listener: mx\n",
                "C: RCPT TO:<a@b>\nD: recipient accept\n",
                "recipient verdict",
            ),
            (
                "listener: imap\nfolder: Projects\n",
                "S: * OK\n",
                "mailbox fixture",
            ),
            (
                "listener: imap\n",
                "C: a LOGIN alice secret\nD: credentials valid alice\n",
                "account",
            ),
            (
                "listener: imap\n",
                "C: a LOGIN a b\nD: credentials tempfail\n",
                "credential",
            ),
            ("listener: imaps\n", "S: * OK\n", "implicit TLS"),
            (
                "listener: imap\nlive: skip assumes Sluice's folders\n",
                "S: * OK\n",
                "Sluice's folders",
            ),
            (
                "listener: mx\n",
                "C: STARTTLS\nS: 220\nS: <starttls>\nC: MAIL FROM:<a@b>\n",
                "plaintext",
            ),
        ];
        for (header, steps, needle) in cases {
            let reason = skip_reason(&vector(header, steps), PLAIN);
            assert!(
                reason.as_deref().is_some_and(|r| r.contains(needle)),
                "{header}{steps}: {reason:?}"
            );
        }
    }

    #[test]
    fn an_account_and_tls_lift_their_skips() {
        let can = Abilities {
            account: true,
            implicit_tls: true,
        };
        let v = vector(
            "listener: imaps\n",
            "C: a LOGIN alice secret\nD: credentials valid alice\nD: credentials invalid\n",
        );
        assert_eq!(skip_reason(&v, can), None);
        assert!(skip_reason(&vector("listener: imap\n", "S: * OK\n"), can).is_some());
    }
}
