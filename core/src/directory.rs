//! What the user directory knows, as the router sees it: the answers to lookups
//! that a driver performs against its store (SQL in `net`, memory in `sim`).
//!
//! Addresses are looked up in normalised form: the local part as written (local
//! parts are case-sensitive by RFC 5321 §2.4, but the store matches them
//! case-insensitively, as every real mail system does) and the domain lower-cased.

/// A lookup the router needs answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DirectoryQuery {
    /// Is this domain one of ours, and how is it configured?
    Domain { domain: String },
    /// What is this exact address (`local@domain`, domain lower-cased)?
    Address { address: String },
}

/// The answer to a [`DirectoryQuery`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirectoryAnswer {
    Domain(Option<DomainEntry>),
    Address(Option<AddressEntry>),
    /// The store could not be asked; the router answers with a temporary failure.
    Unavailable,
}

/// A local domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainEntry {
    pub name: String,
    /// Where mail to unknown local parts of this domain goes, if anywhere.
    pub catch_all: Option<String>,
}

/// What one address of a local domain is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressEntry {
    /// A user with a mailbox, by the user's canonical address.
    User { address: String },
    /// Another name for one or more addresses (local or external).
    Alias { targets: Vec<String> },
    /// A distribution list: each member receives a copy.
    Group { members: Vec<String> },
}
