//! Login failures, counted and slowed per user and per client address, shared by
//! every protocol that checks a password (SMTP AUTH, IMAP LOGIN/AUTHENTICATE, POP3
//! USER/PASS and AUTH): one [`LoginGuard`] per process, consulted by every driver.
//!
//! The guard decides how long the answer to a credential check waits, never
//! whether the check happens: a locked-out owner could not log in at all, while a
//! delay costs a guesser time on every try and an owner a few seconds at worst.
//! The choices, made once here for every protocol:
//! - Each key (the user name as typed, case-folded; the client address, IPv6 by its
//!   /64, which one subscriber usually holds whole) counts its failures. A key
//!   quiet for [`LoginLimits::forget_after`] since its last failure starts again.
//! - The delay before an answer is the larger of the two keys' delays:
//!   `first_delay × 2^(failures − 1)`, at most [`LoginLimits::longest_delay`];
//!   none before the first failure. It applies to every check, successful or not,
//!   so a guesser cannot tell a right password sooner than a wrong one.
//! - A success forgets the user's failures (only the password's owner can clear
//!   them) but not the address's: one account the guesser owns must not clear the
//!   address it guesses other accounts from.
//! - At most [`LoginLimits::max_tracked`] keys are kept; past that the key whose
//!   last failure is oldest is forgotten first. Memory stays bounded under a flood
//!   of names and addresses.
//!
//! Every check also yields a [`LoginEvent`], the audit log's record of it.

use crate::time::{Duration, Instant};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

/// The protocol a login came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoginProtocol {
    Smtp,
    Imap,
    Pop3,
}

impl LoginProtocol {
    pub fn name(self) -> &'static str {
        match self {
            LoginProtocol::Smtp => "smtp",
            LoginProtocol::Imap => "imap",
            LoginProtocol::Pop3 => "pop3",
        }
    }
}

/// How a credential check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoginResult {
    Succeeded,
    /// Wrong name or password: counted.
    Failed,
    /// The check itself could not be made (the store was down): not counted, the
    /// client did nothing wrong.
    Unavailable,
}

/// A credential check about to be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginAttempt<'a> {
    pub protocol: LoginProtocol,
    /// `PLAIN`, `LOGIN`, `USER` …
    pub mechanism: &'static str,
    /// The user name as the client gave it.
    pub user: &'a str,
    pub address: IpAddr,
}

/// One login attempt and how it ended, for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginEvent {
    pub protocol: LoginProtocol,
    /// The user name as the client gave it.
    pub user: String,
    pub address: IpAddr,
    /// `PLAIN`, `LOGIN`, `USER` …
    pub mechanism: &'static str,
    pub result: LoginResult,
    /// How long the answer was held back.
    pub delayed: Duration,
}

/// The guard's bounds and delays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginLimits {
    /// The delay after one failure (default 2 s, as common IMAP servers use).
    pub first_delay: Duration,
    /// The longest delay (default 15 s: a client waits longer than its own timeout
    /// would allow only at the price of the owner's patience).
    pub longest_delay: Duration,
    /// A key with no failure for this long is forgotten (default 15 min).
    pub forget_after: Duration,
    /// Most keys remembered at once (default 65,536: a few MiB).
    pub max_tracked: usize,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            first_delay: Duration::from_secs(2),
            longest_delay: Duration::from_secs(15),
            forget_after: Duration::from_mins(15),
            max_tracked: 65_536,
        }
    }
}

/// What failures are counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    User(String),
    Address(IpAddr),
}

impl Key {
    fn user(user: &str) -> Key {
        Key::User(user.to_lowercase())
    }

    /// IPv4 whole; IPv6 by its /64 prefix; an IPv4-mapped IPv6 address as IPv4.
    fn address(address: IpAddr) -> Key {
        let address = match address {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mut octets = v6.octets();
                    octets[8..].fill(0);
                    IpAddr::V6(octets.into())
                }
            },
            v4 => v4,
        };
        Key::Address(address)
    }
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

/// The shared record of recent login failures. Not a machine with inputs and
/// outputs: a decision table the drivers ask (`delay`) and tell (`record`).
#[derive(Debug, Default)]
pub struct LoginGuard {
    limits: LoginLimits,
    failures: HashMap<Key, Failures>,
    /// The same keys ordered by their last failure: the oldest is forgotten first.
    by_age: BTreeSet<(Instant, Key)>,
}

impl LoginGuard {
    pub fn new(limits: LoginLimits) -> LoginGuard {
        LoginGuard {
            limits,
            failures: HashMap::new(),
            by_age: BTreeSet::new(),
        }
    }

    pub fn limits(&self) -> LoginLimits {
        self.limits
    }

    /// How long to hold back the answer to this attempt's check, now.
    pub fn delay(&self, now: Instant, attempt: &LoginAttempt<'_>) -> Duration {
        let by_user = self.delay_of(now, &Key::user(attempt.user));
        let by_address = self.delay_of(now, &Key::address(attempt.address));
        by_user.max(by_address)
    }

    /// Records how the attempt's check ended, and returns its audit event.
    pub fn record(
        &mut self,
        now: Instant,
        attempt: &LoginAttempt<'_>,
        result: LoginResult,
        delayed: Duration,
    ) -> LoginEvent {
        match result {
            LoginResult::Failed => self.count_failure(
                now,
                [Key::user(attempt.user), Key::address(attempt.address)],
            ),
            LoginResult::Succeeded => self.forget(&Key::user(attempt.user)),
            LoginResult::Unavailable => {}
        }
        LoginEvent {
            protocol: attempt.protocol,
            user: attempt.user.to_owned(),
            address: attempt.address,
            mechanism: attempt.mechanism,
            result,
            delayed,
        }
    }

    /// How many keys are remembered.
    pub fn tracked(&self) -> usize {
        self.failures.len()
    }

    fn delay_of(&self, now: Instant, key: &Key) -> Duration {
        match self.failures.get(key) {
            Some(failures) if !self.forgotten(now, failures) => self.delay_after(failures.count),
            _ => Duration::ZERO,
        }
    }

    /// `first_delay × 2^(count − 1)`, capped.
    fn delay_after(&self, count: u32) -> Duration {
        if count == 0 {
            return Duration::ZERO;
        }
        let doublings = (count - 1).min(32);
        let delay = self.limits.first_delay.saturating_mul(1u64 << doublings);
        delay.min(self.limits.longest_delay)
    }

    fn forgotten(&self, now: Instant, failures: &Failures) -> bool {
        now.saturating_since(failures.last) >= self.limits.forget_after
    }

    /// Counts one failure against each key. Room is made before either is written,
    /// so that making room for one never forgets the other.
    fn count_failure(&mut self, now: Instant, keys: [Key; 2]) {
        let counted = keys.map(|key| {
            let count = match self.failures.get(&key) {
                Some(failures) if !self.forgotten(now, failures) => {
                    failures.count.saturating_add(1)
                }
                _ => 1,
            };
            self.forget(&key);
            (key, count)
        });
        let bound = self.limits.max_tracked.max(1);
        self.forget_oldest_beyond(bound.saturating_sub(counted.len()));
        for (key, count) in counted {
            self.by_age.insert((now, key.clone()));
            self.failures.insert(key, Failures { count, last: now });
        }
        // A bound of one keeps the address (keys of one instant go users first): it
        // outlives any one name guessed from it.
        self.forget_oldest_beyond(bound);
    }

    fn forget_oldest_beyond(&mut self, kept: usize) {
        while self.failures.len() > kept {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.failures.remove(&oldest);
        }
    }

    fn forget(&mut self, key: &Key) {
        if let Some(failures) = self.failures.remove(key) {
            self.by_age.remove(&(failures.last, key.clone()));
        }
    }
}

#[cfg(test)]
mod tests;
