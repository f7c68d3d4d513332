//! Which users' mailboxes changed: what wakes an IMAP session in IDLE (RFC 2177)
//! or with a pending NOOP. Every mailbox write made through a [`super::Store`]
//! announces its user's lookup key after it commits: a delivery at acceptance, a
//! notice stored by the queue, an IMAP change, a POP3 deletion. A session listens
//! for its own user and then asks the store what changed; an announcement is only
//! a hint (a missed one costs the client a NOOP, never a wrong answer).
//!
//! Announcements reach the sessions of this process; `watch_remote` carries
//! them between processes that share a database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{broadcast, mpsc};

/// Announcements held for a slow listener; one that falls further behind is told
/// it lagged and treats that as a change of its mailbox.
const BACKLOG: usize = 1024;

/// The announcer; cloning shares it.
#[derive(Clone, Debug)]
pub struct MailboxWatch {
    sender: broadcast::Sender<Arc<str>>,
    /// Listeners per user key: whom a poll of other processes' changes looks at.
    watched: Arc<Mutex<HashMap<String, usize>>>,
    /// Where this process's own changes go to reach other processes (PostgreSQL).
    outward: Option<mpsc::Sender<String>>,
}

impl Default for MailboxWatch {
    fn default() -> Self {
        MailboxWatch {
            sender: broadcast::channel(BACKLOG).0,
            watched: Arc::default(),
            outward: None,
        }
    }
}

impl MailboxWatch {
    /// A watch that also hands each of its own announcements to `outward`, for
    /// other processes; dropped when that falls behind (they are hints).
    pub(super) fn with_outward(outward: mpsc::Sender<String>) -> MailboxWatch {
        MailboxWatch {
            outward: Some(outward),
            ..MailboxWatch::default()
        }
    }

    /// Says that `user_key`'s mailboxes changed. Nobody listening is fine.
    pub fn announce(&self, user_key: &str) {
        self.announce_here(user_key);
        if let Some(outward) = &self.outward {
            let _ = outward.try_send(user_key.to_owned());
        }
    }

    /// Tells this process's listeners only (a change another process made).
    pub(super) fn announce_here(&self, user_key: &str) {
        let _ = self.sender.send(Arc::from(user_key));
    }

    /// A listener for one user's changes.
    pub fn listen(&self, user_key: &str) -> MailboxListener {
        let user_key = user_key.to_ascii_lowercase();
        *self.users().entry(user_key.clone()).or_default() += 1;
        MailboxListener {
            receiver: self.sender.subscribe(),
            user_key,
            watch: self.clone(),
        }
    }

    /// The users someone listens for now, sorted.
    pub fn watched_users(&self) -> Vec<String> {
        let mut users: Vec<String> = self.users().keys().cloned().collect();
        users.sort();
        users
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // The map is consistent between calls: a poisoned lock still holds it.
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Waits for changes to one user's mailboxes.
#[derive(Debug)]
pub struct MailboxListener {
    receiver: broadcast::Receiver<Arc<str>>,
    user_key: String,
    watch: MailboxWatch,
}

impl Drop for MailboxListener {
    fn drop(&mut self) {
        let mut users = self.watch.users();
        if let Some(count) = users.get_mut(&self.user_key) {
            *count -= 1;
            if *count == 0 {
                users.remove(&self.user_key);
            }
        }
    }
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

    #[test]
    fn the_watched_users_are_those_with_a_live_listener() {
        let watch = MailboxWatch::default();
        let first = watch.listen("alice@example.test");
        let second = watch.listen("ALICE@example.test");
        let bob = watch.listen("bob@example.test");
        assert_eq!(
            watch.watched_users(),
            ["alice@example.test", "bob@example.test"]
        );
        drop(first);
        drop(bob);
        assert_eq!(watch.watched_users(), ["alice@example.test"]);
        drop(second);
        assert!(watch.watched_users().is_empty());
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
