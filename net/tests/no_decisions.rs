//! The quick test of the one rule, for production: outside its tests, `net`
//! contains no SMTP reply code and none of the names of decisions core makes (the
//! list and the detector are shared with the simulator's guard,
//! `sim/tests/no_decisions.rs`).

#[path = "../../core/tests/support/one_rule.rs"]
mod one_rule;

use one_rule::{Allowed, DECISIONS, violations};
use std::path::PathBuf;

/// Names only production could reach for: the queue's ownership of a record is
/// stated in SQL once (`store/owned.rs`), the stored names of the states that are
/// not final with it.
const NET_ONLY: &[&str] = &["'pending', 'deferred'"];

/// Where production may use such a name, and why. Each is either not a decision
/// (configuration, one SQL statement of core's rule) or a known one still to move.
const ALLOWED: &[Allowed] = &[
    Allowed {
        file: "store/owned.rs",
        name: "success_owed = 1",
        why: "the one SQL statement of core's `queue::still_owned`, tested against it",
    },
    Allowed {
        file: "store/owned.rs",
        name: "'pending', 'deferred'",
        why: "the same statement: the stored names of the states that are not final",
    },
    Allowed {
        file: "store/queue_columns.rs",
        name: "Reply::new(",
        why: "reading back a delivered record whose stored reply no longer parses \
              (written by an older version): a placeholder reply, not a decision \
              about mail; still to move into core",
    },
    Allowed {
        file: "store/queue_columns.rs",
        name: "EnhancedStatus::new(",
        why: "the same read-back: a stored status that no longer parses keeps only \
              the class its state implies (X.0.0)",
    },
];

#[test]
fn production_makes_no_decision_of_core() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let names: Vec<&str> = DECISIONS.iter().chain(NET_ONLY).copied().collect();
    let violations = violations(&root, &names, ALLOWED);
    assert!(violations.is_empty(), "{violations:#?}");
}
