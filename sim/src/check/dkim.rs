//! The `dkim-signatures` checker: every copy a remote server stored that comes
//! from a signing domain (its From domain, else its envelope sender's, or a parent
//! of either, has a key) carries a signature by that domain which the remote's
//! verifier (mail-auth's, against the simulated DNS) passed; every signature on
//! every copy verifies; and no copy is signed by a domain it does not come from.
//! Which domain must sign is the checker's own model, read from the scenario.

use super::{Context, Guarantee, Observations, Violation};
use sluice_core::time::Instant;
use sluice_dkim::covers;
use sluice_dkim::verify::SignatureCheck;

/// One copy a remote stored, as its DKIM verifier saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCopy {
    pub at: Instant,
    pub tag: String,
    pub remote: String,
    pub recipients: Vec<String>,
    /// The From addresses, lower case.
    pub from: Vec<String>,
    /// The envelope sender, None for the null reverse-path.
    pub envelope: Option<String>,
    /// Every DKIM-Signature, top first, with the verifier's result.
    pub signatures: Vec<SignatureCheck>,
}

/// What the run's signatures came to, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DkimCounts {
    /// Copies stored at remotes carrying at least one signature.
    pub signed: usize,
    /// Signatures that verified, and that did not.
    pub verified: usize,
    pub failed: usize,
    /// Copies from a signing domain stored without a signature of it that verifies.
    pub unsigned: usize,
}

fn domain_of(address: &str) -> Option<&str> {
    address.rsplit_once('@').map(|(_, domain)| domain)
}

/// The domain whose key must sign `copy`: the most specific signing domain that
/// covers its From domain, else its envelope sender's domain.
fn expected_signer<'a>(copy: &VerifiedCopy, signing: &'a [String]) -> Option<&'a str> {
    let most_specific = |domain: &str| {
        signing
            .iter()
            .filter(|key| covers(key, domain))
            .max_by_key(|key| key.len())
            .map(String::as_str)
    };
    let from = copy.from.first().and_then(|from| domain_of(from));
    let envelope = copy.envelope.as_deref().and_then(domain_of);
    from.and_then(most_specific)
        .or_else(|| envelope.and_then(most_specific))
}

/// Whether a signature by `domain` may stand on `copy`: the domain is the copy's
/// From or envelope sender's domain, or a parent of one.
fn comes_from(copy: &VerifiedCopy, domain: &str) -> bool {
    copy.from
        .iter()
        .chain(copy.envelope.as_ref())
        .filter_map(|address| domain_of(address))
        .any(|from| covers(domain, from))
}

pub(super) fn counts(obs: &Observations, context: &Context) -> DkimCounts {
    let mut counts = DkimCounts::default();
    for copy in &obs.verified_copies {
        if !copy.signatures.is_empty() {
            counts.signed += 1;
        }
        counts.verified += copy.signatures.iter().filter(|s| s.passed).count();
        counts.failed += copy.signatures.iter().filter(|s| !s.passed).count();
        if let Some(expected) = expected_signer(copy, &context.dkim_domains)
            && !copy
                .signatures
                .iter()
                .any(|s| s.passed && s.domain == expected)
        {
            counts.unsigned += 1;
        }
    }
    counts
}

pub(super) fn dkim_signatures(
    obs: &Observations,
    context: &Context,
    violations: &mut Vec<Violation>,
) {
    for copy in &obs.verified_copies {
        let mut violation = |detail: String| {
            violations.push(Violation {
                guarantee: Guarantee::Dkim,
                subject: copy.tag.clone(),
                detail,
            });
        };
        let to = copy.recipients.join(",");
        let at = copy.at.as_millis();
        for signature in &copy.signatures {
            if !signature.passed {
                violation(format!(
                    "{} stored {} for {to} at t+{at}ms with a signature by d={} that does \
                     not verify: {}",
                    copy.remote, copy.tag, signature.domain, signature.result
                ));
            }
            if !comes_from(copy, &signature.domain) {
                violation(format!(
                    "{} stored {} for {to} signed by d={}, a domain it does not come from \
                     (From {:?}, envelope {:?})",
                    copy.remote, copy.tag, signature.domain, copy.from, copy.envelope
                ));
            }
        }
        if let Some(expected) = expected_signer(copy, &context.dkim_domains)
            && !copy
                .signatures
                .iter()
                .any(|s| s.passed && s.domain == expected)
        {
            violation(format!(
                "{} stored {} for {to} at t+{at}ms without a verifying signature by d={expected} \
                 (From {:?}, envelope {:?})",
                copy.remote, copy.tag, copy.from, copy.envelope
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn copy(from: &str, envelope: Option<&str>, signatures: &[(&str, bool)]) -> VerifiedCopy {
        VerifiedCopy {
            at: Instant::from_millis(1),
            tag: "m1".to_owned(),
            remote: "mx.remote1.example".to_owned(),
            recipients: vec!["ext1@remote1.example".to_owned()],
            from: vec![from.to_owned()],
            envelope: envelope.map(str::to_owned),
            signatures: signatures
                .iter()
                .map(|(domain, passed)| SignatureCheck {
                    domain: (*domain).to_owned(),
                    selector: "sim".to_owned(),
                    passed: *passed,
                    result: String::new(),
                })
                .collect(),
        }
    }

    fn violations(copies: Vec<VerifiedCopy>) -> Vec<Violation> {
        let obs = Observations {
            verified_copies: copies,
            ..Observations::default()
        };
        let context = Context {
            dkim_domains: vec!["sluice.test".to_owned()],
            ..Context::default()
        };
        super::super::check(&obs, &context, &BTreeSet::from([Guarantee::Dkim]))
    }

    #[test]
    fn a_signing_domains_copy_needs_its_own_verifying_signature() {
        let local = "user1@sluice.test";
        assert!(violations(vec![copy(local, None, &[("sluice.test", true)])]).is_empty());
        // A notice from a host of the domain: the parent's key covers it.
        let notice = "mailer@gw1.sluice.test";
        assert!(violations(vec![copy(notice, None, &[("sluice.test", true)])]).is_empty());
        // Forwarded mail of an outside sender goes out unsigned.
        let outside = "sender@remote2.example";
        assert!(violations(vec![copy(outside, Some(outside), &[])]).is_empty());
        // Unsigned, failing, or signed by the wrong domain: each is a violation.
        assert_eq!(violations(vec![copy(local, None, &[])]).len(), 1);
        assert_eq!(
            violations(vec![copy(local, None, &[("sluice.test", false)])]).len(),
            2
        );
        let wrong = violations(vec![copy(outside, Some(outside), &[("sluice.test", true)])]);
        assert_eq!(wrong.len(), 1, "{wrong:?}");
        assert!(wrong[0].detail.contains("does not come from"));
        // The envelope's domain signs when the From domain has no key.
        let resent = copy(outside, Some(local), &[("sluice.test", true)]);
        assert!(violations(vec![resent]).is_empty());
        assert_eq!(violations(vec![copy(outside, Some(local), &[])]).len(), 1);
    }
}
