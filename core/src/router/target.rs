//! Addresses as the router handles them: normalised once, for the directory's
//! lookups, for routes, and for loop and duplicate detection.

use crate::smtp::address::{Host, Mailbox};

/// One address to resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// `local@domain` with the local part in wire form and the domain lower-cased:
    /// what the directory is asked about and what an external route carries.
    pub(crate) address: String,
    /// The address lower-cased throughout. The directory matches local parts
    /// case-insensitively, so `Bob@x` and `bob@x` are one node of the expansion.
    pub(crate) key: String,
    pub(crate) host: TargetHost,
    /// The decoded local part, for the postmaster rule.
    pub(crate) local_part: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TargetHost {
    /// A domain, lower-cased: it may be one of ours.
    Domain(String),
    /// An address literal: never looked up, always external.
    Literal,
}

impl Target {
    pub(crate) fn from_mailbox(mailbox: &Mailbox) -> Target {
        let (host_text, host) = match &mailbox.host {
            Host::Domain(domain) => {
                let lower = domain.as_str().to_ascii_lowercase();
                (lower.clone(), TargetHost::Domain(lower))
            }
            Host::Literal(literal) => (literal.to_string(), TargetHost::Literal),
        };
        let address = format!("{}@{}", mailbox.local_part, host_text);
        Target {
            key: address.to_ascii_lowercase(),
            address,
            host,
            local_part: mailbox.local_part.as_str().to_owned(),
        }
    }

    /// Reads an alias, group or catch-all target from the directory. The store holds
    /// plain `local@domain` text; angle brackets are tolerated because admins type them.
    pub(crate) fn parse(text: &str) -> Option<Target> {
        let trimmed = text.trim();
        let bare = trimmed
            .strip_prefix('<')
            .and_then(|inner| inner.strip_suffix('>'))
            .unwrap_or(trimmed);
        Mailbox::parse(bare)
            .ok()
            .map(|mailbox| Target::from_mailbox(&mailbox))
    }
}

/// A user's canonical address with its domain lower-cased, so that the same user
/// named twice by the directory is delivered to once.
pub(crate) fn canonical_mailbox(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
        None => address.to_owned(),
    }
}
