//! Core's own check against the conformance reference: every vector under
//! `spec/vectors/` replayed against this crate's server sessions (SMTP and LMTP, and
//! POP3 for `vectors/pop3/`, IMAP for `vectors/imap/`), fed as written
//! (`sluice-spec`'s tests add the byte-at-a-time replay and the transcript snapshots).

use sluice_spec::{Feed, default_vectors_dir, load_dir, run};

#[test]
fn the_session_passes_every_conformance_vector() {
    let vectors = load_dir(&default_vectors_dir()).unwrap_or_else(|error| panic!("{error}"));
    assert!(vectors.len() >= 40, "only {} vectors found", vectors.len());
    let pop3 = vectors.iter().filter(|v| v.listener.is_pop3()).count();
    assert!(pop3 >= 20, "only {pop3} POP3 vectors found");
    let imap = vectors.iter().filter(|v| v.listener.is_imap()).count();
    assert!(imap >= 60, "only {imap} IMAP vectors found");
    let failures: Vec<String> = vectors
        .iter()
        .filter(|vector| vector.known_discrepancy.is_none())
        .flat_map(|vector| {
            let outcome = run(vector, Feed::AsWritten);
            outcome
                .failures
                .into_iter()
                .map(|failure| {
                    format!(
                        "{}:{}: {}",
                        vector.path.display(),
                        failure.line,
                        failure.message
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
