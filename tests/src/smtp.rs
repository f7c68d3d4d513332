//! A deliberately small SMTP client over any tokio stream: enough to send raw
//! commands (including malformed and relay-probing ones that polite client libraries
//! refuse to write), pipeline, and transfer dot-stuffed messages.

use anyhow::{Context, bail};
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

/// Longest reply line accepted before giving up on a misbehaving server.
const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one multiline reply.
const MAX_REPLY_LINES: usize = 100;

/// One SMTP reply: its code and the text of each line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_permanent_failure(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// Every line's text joined by newlines.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The queue id in `250 2.0.0 ok: queued as <id>`.
    pub fn queue_id(&self) -> Option<String> {
        let text = self.lines.first()?;
        let (_, id) = text.split_once("queued as ")?;
        Some(id.trim().trim_matches(['<', '>']).to_owned())
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

/// A connection to an SMTP server.
#[derive(Debug)]
pub struct SmtpClient<S> {
    stream: BufStream<S>,
    line: Vec<u8>,
}

impl SmtpClient<TcpStream> {
    /// Connects and reads the greeting.
    pub async fn connect(address: SocketAddr) -> anyhow::Result<(Self, Reply)> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        let mut client = SmtpClient::new(stream);
        let greeting = client.read_reply().await?;
        Ok((client, greeting))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> SmtpClient<S> {
    pub fn new(stream: S) -> Self {
        SmtpClient {
            stream: BufStream::with_capacity(16 * 1024, 16 * 1024, stream),
            line: Vec::with_capacity(512),
        }
    }

    /// Reads one whole (possibly multiline) reply.
    pub async fn read_reply(&mut self) -> anyhow::Result<Reply> {
        let mut lines = Vec::new();
        loop {
            self.line.clear();
            let read = (&mut self.stream)
                .take(MAX_REPLY_LINE as u64)
                .read_until(b'\n', &mut self.line)
                .await?;
            if read == 0 {
                bail!("connection closed while waiting for a reply");
            }
            let text = String::from_utf8_lossy(&self.line);
            let text = text.trim_end_matches(['\r', '\n']);
            if text.len() < 3 || !text.is_char_boundary(3) {
                bail!("malformed reply line {text:?}");
            }
            let code: u16 = text[..3]
                .parse()
                .with_context(|| format!("malformed reply line {text:?}"))?;
            let last = text.len() == 3 || text.as_bytes()[3] == b' ';
            lines.push(text.get(4..).unwrap_or("").to_owned());
            if last {
                return Ok(Reply { code, lines });
            }
            if lines.len() >= MAX_REPLY_LINES {
                bail!("reply with more than {MAX_REPLY_LINES} lines");
            }
        }
    }

    /// Queues a command line (CRLF added) without sending it: for pipelining.
    pub async fn write_line(&mut self, line: &str) -> anyhow::Result<()> {
        self.stream.write_all(line.as_bytes()).await?;
        self.stream.write_all(b"\r\n").await?;
        Ok(())
    }

    /// Queues raw bytes (e.g. an already dot-stuffed message) without sending them.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Sends what was queued.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        self.stream.flush().await?;
        Ok(())
    }

    /// Sends one command line and reads its reply.
    pub async fn command(&mut self, line: &str) -> anyhow::Result<Reply> {
        self.write_line(line).await?;
        self.flush().await?;
        self.read_reply().await
    }

    /// After a 354: sends `message` dot-stuffed and terminated, and reads the reply.
    pub async fn send_data(&mut self, message: &[u8]) -> anyhow::Result<Reply> {
        self.stream.write_all(&dot_stuff(message)).await?;
        self.flush().await?;
        self.read_reply().await
    }

    /// One transaction without pipelining: MAIL, each RCPT, DATA and the message.
    /// Stops at the first refusal and returns the replies so far.
    pub async fn send_mail(
        &mut self,
        from: &str,
        recipients: &[&str],
        message: &[u8],
    ) -> anyhow::Result<Transaction> {
        let mut transaction = Transaction::default();
        let mail = self.command(&format!("MAIL FROM:<{from}>")).await?;
        let mail_ok = mail.is_positive();
        transaction.mail = Some(mail);
        if !mail_ok {
            return Ok(transaction);
        }
        for recipient in recipients {
            let reply = self.command(&format!("RCPT TO:<{recipient}>")).await?;
            transaction.recipients.push(reply);
        }
        if !transaction.recipients.iter().any(Reply::is_positive) {
            self.command("RSET").await?;
            return Ok(transaction);
        }
        let data = self.command("DATA").await?;
        let go_ahead = data.code == 354;
        transaction.data = Some(data);
        if go_ahead {
            transaction.end_of_data = Some(self.send_data(message).await?);
        }
        Ok(transaction)
    }

    /// Sends QUIT and reads its reply, ignoring a connection already gone.
    pub async fn quit(mut self) {
        let _ = self.command("QUIT").await;
    }
}

/// The replies of one transaction, as far as it went.
#[derive(Clone, Debug, Default)]
pub struct Transaction {
    pub mail: Option<Reply>,
    pub recipients: Vec<Reply>,
    pub data: Option<Reply>,
    pub end_of_data: Option<Reply>,
}

impl Transaction {
    /// The final 250 after the message, if it came.
    pub fn accepted(&self) -> Option<&Reply> {
        self.end_of_data.as_ref().filter(|reply| reply.code == 250)
    }
}

/// The message as it travels after DATA: CRLF ensured at the end, every line that
/// starts with a dot gets another one (RFC 5321 §4.5.2), then `.` CRLF.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 5);
    let mut at_line_start = true;
    for &byte in message {
        if at_line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        at_line_start = byte == b'\n';
    }
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_terminates() {
        assert_eq!(
            dot_stuff(b".a\r\nb.\r\n..c\r\n"),
            b"..a\r\nb.\r\n...c\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b"x"), b"x\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
    }

    #[tokio::test]
    async fn replies_are_read_across_lines() {
        let (near, far) = tokio::io::duplex(4096);
        let mut server = BufStream::new(far);
        server
            .write_all(b"250-mx greets you\r\n250-PIPELINING\r\n250 2.0.0 ok: queued as Q1\r\n")
            .await
            .unwrap();
        server.flush().await.unwrap();
        let mut client = SmtpClient::new(near);
        let reply = client.read_reply().await.unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(reply.lines.len(), 3);
        assert_eq!(
            Reply {
                code: 250,
                lines: vec!["2.0.0 ok: queued as Q1".into()]
            }
            .queue_id()
            .as_deref(),
            Some("Q1")
        );
    }
}
