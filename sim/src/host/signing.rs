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
    if !destination.path.leaves_our_tiers() {
        return None;
    }
    let unix_seconds = host_now.as_millis() / 1000;
    let reverse_path = message.reverse_path.as_deref();
    match keys.signed(&message.body, reverse_path, unix_seconds) {
        Ok(Some(signed)) => {
            let mut body = signed.message;
            if alter_after_signing {
                body.extend_from_slice(FOOTER);
            }
            message.body = body.into();
            Some(format!(" signed d={} t={unix_seconds}", signed.domain))
        }
        Ok(None) => None,
        // As net: the message goes out unsigned, and the checker will say so.
        Err(error) => Some(format!(" unsigned: {error}")),
    }
}
