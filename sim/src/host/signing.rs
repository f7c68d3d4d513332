//! DKIM signing of outgoing mail, where net signs it (`Deliverer::attempt`): once
//! per attempt, when the destination leaves our tiers, by sluice-dkim's key store
//! (the same signer and key choice as net) at the host's clock. The planted bug
//! that changes the message after signing acts here.

use sluice_core::delivery::Destination;
use sluice_core::smtp::client::OutgoingMessage;
use sluice_core::time::Instant;
use sluice_dkim::DkimKeyStore;

/// What a host appends to a message after signing it under the
/// `dkim-alter-after-signing` bug.
const FOOTER: &[u8] = b"-- \r\nsent through the simulated gateway\r\n";

/// Signs `message` for an attempt over `destination` at `host_now` (the host's
/// clock, Unix milliseconds); the note for the trace, or None when it goes out
/// unsigned.
pub(crate) fn sign_for_attempt(
    keys: &DkimKeyStore,
    message: &mut OutgoingMessage,
    destination: &Destination,
    host_now: Instant,
    alter_after_signing: bool,
) -> Option<String> {
    if keys.is_empty() || !destination.path.leaves_our_tiers() {
        return None;
    }
    let unix_seconds = host_now.as_millis() / 1000;
    let reverse_path = message.reverse_path.as_deref();
    let signer = keys.signer_of(&message.body, reverse_path)?;
    let domain = signer.domain().to_owned();
    match keys.signed(&message.body, reverse_path, unix_seconds) {
        Ok(Some(mut signed)) => {
            if alter_after_signing {
                signed.extend_from_slice(FOOTER);
            }
            message.body = signed.into();
            Some(format!(" signed d={domain} t={unix_seconds}"))
        }
        Ok(None) => None,
        // As net: the message goes out unsigned, and the checker will say so.
        Err(error) => Some(format!(" unsigned: {error}")),
    }
}
