//! What the router decides for one recipient, why, and how that decision becomes
//! the session's RCPT verdict.

use crate::smtp::server::RecipientVerdict;

/// Where mail for one envelope recipient goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Deliver a copy to each local mailbox and each external address. At least one
    /// of the two lists is non-empty; both are sorted and free of duplicates.
    Deliver {
        /// Canonical addresses of local users, as the directory names them.
        local_mailboxes: Vec<String>,
        /// External addresses (`local@domain`, domain lower-cased, or an address
        /// literal), queued for the delivery tier.
        external: Vec<String>,
    },
    /// The recipient is refused for good.
    Refused(Refusal),
    /// The recipient cannot be decided now; the client should try again later.
    TemporaryFailure(TemporaryReason),
}

/// Why a recipient is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// A local domain without this address and without a catch-all.
    UnknownUser,
    /// An external recipient from a client that did not authenticate.
    RelayDenied,
    /// The expansion found nothing deliverable, and at least one branch looped back
    /// onto its own path.
    Loop,
    /// The expansion found nothing deliverable, and at least one branch was cut at
    /// `RouterLimits::depth`.
    TooDeep,
    /// The expansion visited more than `RouterLimits::expanded_addresses` addresses.
    ExpansionTooLarge,
    /// An alias, group or catch-all that leads nowhere: empty, or only unknown or
    /// malformed members. Accepting would promise delivery to nobody.
    EmptyExpansion,
}

/// Why a recipient cannot be decided now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TemporaryReason {
    /// The directory answered `Unavailable`.
    DirectoryUnavailable,
    /// The driver answered a domain query with an address answer or the reverse.
    MismatchedAnswer,
    /// A lookup or the whole job outlived its limit.
    Timeout,
    /// `RouterLimits::jobs` jobs were already in flight.
    Overloaded,
    /// A job with this token is already in flight; that one continues.
    DuplicateJob,
}

/// What happened along the way, for logs and metrics; not part of the decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RouteStats {
    /// Lookups the job asked for.
    pub lookups: u32,
    /// Distinct addresses visited, the recipient included.
    pub addresses: u32,
    /// Branches dropped because they led back to an address on their own path.
    pub loops_dropped: u32,
    /// Branches dropped at the depth limit.
    pub too_deep_dropped: u32,
    /// Alias or group members in a local domain that the directory does not know.
    pub unknown_members: u32,
    /// Alias, group or catch-all targets that are not valid addresses.
    pub invalid_targets: u32,
}

impl Route {
    /// The RCPT verdict for the session.
    ///
    /// The session can say only accept, 550 5.1.1, 554 5.7.1 or 451: every permanent
    /// refusal other than relaying becomes 550 5.1.1, which is what the client can
    /// act on ("this address takes no mail"). The precise reason stays in the route
    /// for the logs.
    pub fn verdict(&self) -> RecipientVerdict {
        match self {
            Route::Deliver { .. } => RecipientVerdict::Accept,
            Route::Refused(Refusal::RelayDenied) => RecipientVerdict::RelayDenied,
            Route::Refused(_) => RecipientVerdict::UnknownUser,
            Route::TemporaryFailure(_) => RecipientVerdict::TemporaryFailure,
        }
    }

    /// Whether mail to this recipient is accepted.
    pub fn is_deliver(&self) -> bool {
        matches!(self, Route::Deliver { .. })
    }
}
