//! Which users' mailboxes changed: what wakes an IMAP session in IDLE (RFC 2177)
//! or with a pending NOOP. Every mailbox write made through a [`super::Store`]
//! announces its user's lookup key after it commits: a delivery at acceptance, a
//! notice stored by the queue, an IMAP change, a POP3 deletion. A session listens
//! for its own user and then asks the store what changed; an announcement is only
//! a hint (a missed one costs the client a NOOP, never a wrong answer).
//!
//! Announcements reach the sessions of this process only.

use std::sync::Arc;
use tokio::sync::broadcast;

/// Announcements held for a slow listener; one that falls further behind is told
/// it lagged and treats that as a change of its mailbox.
const BACKLOG: usize = 1024;

/// The announcer; cloning shares it.
#[derive(Clone, Debug)]
pub struct MailboxWatch {
    sender: broadcast::Sender<Arc<str>>,
}

impl Default for MailboxWatch {
    fn default() -> Self {
        MailboxWatch {
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl MailboxWatch {
    /// Says that `user_key`'s mailboxes changed. Nobody listening is fine.
    pub fn announce(&self, user_key: &str) {
        let _ = self.sender.send(Arc::from(user_key));
    }

    /// A listener for one user's changes.
    pub fn listen(&self, user_key: &str) -> MailboxListener {
        MailboxListener {
            receiver: self.sender.subscribe(),
            user_key: user_key.to_ascii_lowercase(),
        }
    }
}

/// Waits for changes to one user's mailboxes.
#[derive(Debug)]
pub struct MailboxListener {
    receiver: broadcast::Receiver<Arc<str>>,
    user_key: String,
}

impl MailboxListener {
    /// Returns once the user's mailboxes may have changed (an announcement for
    /// them, or announcements lost to lag); never if the watch is gone.
    pub async fn changed(&mut self) {
        loop {
            match self.receiver.recv().await {
                Ok(user) if *user == *self.user_key => return,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listener_hears_its_own_user_only() {
        let watch = MailboxWatch::default();
        let mut alice = watch.listen("Alice@Example.test");
        watch.announce("bob@example.test");
        watch.announce("alice@example.test");
        alice.changed().await;
        // Another user's announcement does not wake alice.
        watch.announce("bob@example.test");
        let mut waiting = std::pin::pin!(alice.changed());
        let poll = std::future::Future::poll(
            waiting.as_mut(),
            &mut std::task::Context::from_waker(std::task::Waker::noop()),
        );
        assert!(poll.is_pending());
    }

    #[tokio::test]
    async fn a_lagging_listener_is_told_of_a_change() {
        let watch = MailboxWatch::default();
        let mut alice = watch.listen("alice@example.test");
        for _ in 0..BACKLOG + 1 {
            watch.announce("bob@example.test");
        }
        alice.changed().await;
    }
}
