//! Authenticated submitters. Core's client machine has no AUTH (it delivers between
//! MTAs), so a submitter is core's client with a shim on its connection: right after
//! the client's EHLO the shim sends `AUTH PLAIN` with the user's credentials, and it
//! keeps the server's answer to that one command from the client. The server session
//! decides everything as usual; the shim only adds a command and hides its reply.
//! A failed AUTH shows as the server's refusal of MAIL.

use base64::Engine as _;

/// The shim on one submitter connection.
#[derive(Debug)]
pub struct AuthShim {
    auth_line: Vec<u8>,
    state: State,
    /// Server bytes held while reply boundaries are looked for.
    held: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// The client has not said EHLO yet.
    BeforeEhlo,
    /// AUTH was sent after EHLO: the next reply (EHLO's) passes, the one after is AUTH's.
    AwaitingEhloReply,
    AwaitingAuthReply,
    Done,
}

impl AuthShim {
    pub fn new(username: &str, password: &str) -> AuthShim {
        let secret =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{username}\0{password}"));
        AuthShim {
            auth_line: format!("AUTH PLAIN {secret}\r\n").into_bytes(),
            state: State::BeforeEhlo,
            held: Vec::new(),
        }
    }

    /// Client bytes on their way to the server.
    pub fn to_server(&mut self, mut bytes: Vec<u8>) -> Vec<u8> {
        let is_ehlo = bytes.len() >= 4 && bytes[..4].eq_ignore_ascii_case(b"EHLO");
        if self.state == State::BeforeEhlo && is_ehlo {
            bytes.extend_from_slice(&self.auth_line);
            self.state = State::AwaitingEhloReply;
        }
        bytes
    }

    /// Server bytes on their way to the client, without the AUTH reply.
    pub fn to_client(&mut self, bytes: Vec<u8>) -> Vec<u8> {
        if matches!(self.state, State::BeforeEhlo | State::Done) {
            return bytes;
        }
        self.held.extend_from_slice(&bytes);
        let mut out = Vec::new();
        while let Some(end) = reply_end(&self.held) {
            let reply: Vec<u8> = self.held.drain(..end).collect();
            match self.state {
                State::AwaitingEhloReply => {
                    out.extend_from_slice(&reply);
                    self.state = State::AwaitingAuthReply;
                }
                State::AwaitingAuthReply => self.state = State::Done,
                State::BeforeEhlo | State::Done => out.extend_from_slice(&reply),
            }
            if self.state == State::Done {
                out.append(&mut self.held);
                break;
            }
        }
        out
    }
}

/// Where the first complete reply in `bytes` ends: after the CRLF of its last line,
/// the line whose fourth octet is a space (RFC 5321 §4.2.1), or that has only a code.
fn reply_end(bytes: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(offset) = bytes[start..].windows(2).position(|pair| pair == b"\r\n") {
        let line = &bytes[start..start + offset];
        let next = start + offset + 2;
        if line.len() <= 3 || line.get(3) == Some(&b' ') {
            return Some(next);
        }
        start = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_follows_ehlo_and_its_reply_is_hidden() {
        let mut shim = AuthShim::new("user1@sluice.test", "pw");
        assert_eq!(
            shim.to_client(b"greeting line\r\n".to_vec()),
            b"greeting line\r\n"
        );
        let sent = shim.to_server(b"EHLO client\r\n".to_vec());
        assert!(sent.starts_with(b"EHLO client\r\nAUTH PLAIN "));
        // The EHLO reply arrives in two pieces, then the AUTH reply with the next one.
        assert_eq!(shim.to_client(b"xxx-first\r\nxxx".to_vec()), b"");
        assert_eq!(
            shim.to_client(b" last\r\nyyy auth\r\nzzz".to_vec()),
            b"xxx-first\r\nxxx last\r\nzzz"
        );
        assert_eq!(shim.to_client(b" more\r\n".to_vec()), b" more\r\n");
        assert_eq!(
            shim.to_server(b"EHLO again\r\n".to_vec()),
            b"EHLO again\r\n"
        );
    }
}
