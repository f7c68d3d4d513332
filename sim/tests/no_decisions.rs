//! The quick test of the one rule, for the simulator: outside its tests, `sim`
//! contains no SMTP reply code and none of the names of decisions core makes. The
//! detector is shared with net's guard (`net/tests/no_decisions.rs`). The only retry
//! arithmetic in `sim` is the simulated clients' own backoff (a model of other MTAs)
//! and the retry checker's model of the configured schedule in `check/retry.rs`,
//! written apart from core's on purpose: it judges core, it decides nothing.

#[path = "../../core/tests/support/one_rule.rs"]
mod one_rule;

use one_rule::{Allowed, DECISIONS, violations};
use std::path::PathBuf;

/// Names only the simulator must avoid: a comment that claims to mirror net
/// instead of running core; whether a local copy owes a success notice
/// (`owes_success_notice`), which the simulated disk takes from the record core's
/// `node::accept` made (net's store asks core the same per copy as it writes it);
/// and an IMAP answer made up outside core: the host answers every mailbox
/// request through core's `imap::backend::answer` (a store that fails says only
/// `Refused(Unavailable)`), never with a selection, metadata, changes, a copy, an
/// expunge or a flag change of its own.
const SIM_ONLY: &[&str] = &[
    "MIRRORS NET",
    "owes_success_notice",
    "MailboxAnswer::Selected",
    "MailboxAnswer::Metadata",
    "MailboxAnswer::Changes",
    "MailboxAnswer::Copied",
    "MailboxAnswer::Expunged",
    "MailboxAnswer::Stored",
    "MailboxAnswer::Appended",
    "MailboxAnswer::Content",
];

/// Where the simulator may use such a name, and why.
const ALLOWED: &[Allowed] = &[
    Allowed {
        file: "world/client.rs",
        name: "*",
        why: "the workload's clients model other MTAs: they read a report as any \
              sender would, with their own backoff",
    },
    Allowed {
        file: "check/",
        name: "*",
        why: "the checkers judge the run, they do not drive it: an independent oracle \
              may recompute what core decided (issue 10, item 5)",
    },
];

#[test]
fn the_simulator_makes_no_decision_of_the_node() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let names: Vec<&str> = DECISIONS.iter().chain(SIM_ONLY).copied().collect();
    let violations = violations(&root, &names, ALLOWED);
    assert!(violations.is_empty(), "{violations:#?}");
}
