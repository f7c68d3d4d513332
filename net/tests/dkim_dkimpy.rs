//! DKIM signatures made by `net::dkim` checked by an independent verifier: Python's
//! dkimpy (with PyNaCl for Ed25519), given our published TXT record through its
//! `dnsfunc` hook. Both algorithms, both PEM forms of RSA keys, and tampering with
//! the body or a signed header field must make verification fail. Without python3
//! and dkimpy the verifier tests print `skipped: dkimpy not installed` and pass,
//! unless CI=true.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::DecodePrivateKey as _;
use sluice_net::dkim::{DkimAlgorithm, DkimKeyStore, DkimRecord, DkimSigner, generate_key};
use std::io::Write as _;
use std::process::Command;
use std::sync::OnceLock;

const MESSAGE: &str = concat!(
    "From: Alice Example <alice@mail.example.com>\r\n",
    "To: bob@example.net\r\n",
    "Subject: Quarterly  report\r\n",
    "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n",
    "Message-ID: <q1@mail.example.com>\r\n",
    "MIME-Version: 1.0\r\n",
    "Content-Type: text/plain; charset=utf-8\r\n",
    "X-Unsigned: not in the list\r\n",
    "\r\n",
    "The numbers are in.  \r\n",
    "\r\n",
    "Alice\r\n",
);

/// Asks dkimpy to verify the topmost signature, answering its one DNS query with
/// `record`; prints "pass" or "fail".
const VERIFY: &str = r#"
import sys, dkim
message = open(sys.argv[1], "rb").read()
name, record = sys.argv[2].encode(), sys.argv[3].encode()
def dnsfunc(query, timeout=5):
    return record if query == name + b"." else None
print("pass" if dkim.verify(message, dnsfunc=dnsfunc) else "fail")
"#;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

fn dkimpy_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import dkim, nacl"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !ok {
        if in_ci() {
            panic!("dkimpy is not installed, but CI=true: tests/install-peers.sh must install it");
        }
        println!("skipped: dkimpy not installed");
    }
    ok
}

/// What dkimpy says of `signed` (the signature header prepended to the message).
fn dkimpy_verdict(signed: &[u8], record: &DkimRecord) -> String {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(signed).unwrap();
    // The verifier sees the record as DNS delivers it: the strings concatenated.
    let value = record.strings().concat();
    let output = Command::new("python3")
        .args(["-c", VERIFY])
        .arg(file.path())
        .arg(&record.name)
        .arg(value)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "dkimpy crashed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// When the tests sign (`t=`): 2026-03-02T10:00:00Z, the message's Date.
const SIGNED_AT: u64 = 1_772_445_600;

fn signed(signer: &DkimSigner, message: &str) -> Vec<u8> {
    let header = signer.sign(message.as_bytes(), SIGNED_AT).unwrap();
    assert!(header.starts_with("DKIM-Signature: v=1; a="), "{header}");
    assert!(header.ends_with("\r\n"), "{header:?}");
    [header.as_bytes(), message.as_bytes()].concat()
}

/// RSA key generation is slow in test builds: one key per test binary.
fn rsa_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| {
        generate_key("example.com", "rsa1", DkimAlgorithm::Rsa)
            .unwrap()
            .private_key_pem
    })
}

fn rsa_signer() -> DkimSigner {
    DkimSigner::from_pem("example.com", "rsa1", rsa_pem().as_bytes(), "test key").unwrap()
}

fn ed25519_signer() -> DkimSigner {
    let generated = generate_key("example.com", "ed1", DkimAlgorithm::Ed25519).unwrap();
    generated.signer
}

#[test]
fn rsa_sha256_signatures_verify_with_dkimpy() {
    let signer = rsa_signer();
    let record = signer.record();
    assert!(
        record.value.starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"),
        "{}",
        record.value
    );
    assert!(
        record.strings().len() >= 2,
        "a 2048-bit key needs two strings"
    );
    let message = signed(&signer, MESSAGE);
    let header = String::from_utf8_lossy(&message);
    assert!(header.contains("a=rsa-sha256"));
    assert!(header.contains("c=relaxed/relaxed"));
    assert!(header.contains("d=example.com"));
    assert!(header.contains(&format!("t={SIGNED_AT};")), "{header}");
    if !dkimpy_available() {
        return;
    }
    assert_eq!(dkimpy_verdict(&message, &record), "pass");
}

#[test]
fn ed25519_sha256_signatures_verify_with_dkimpy() {
    let signer = ed25519_signer();
    let record = signer.record();
    assert!(
        record.value.starts_with("v=DKIM1; k=ed25519; p="),
        "{}",
        record.value
    );
    let message = signed(&signer, MESSAGE);
    assert!(String::from_utf8_lossy(&message).contains("a=ed25519-sha256"));
    if !dkimpy_available() {
        return;
    }
    assert_eq!(dkimpy_verdict(&message, &record), "pass");
}

#[test]
fn a_pkcs1_rsa_key_signs_like_its_pkcs8_form() {
    let pkcs1 = rsa::RsaPrivateKey::from_pkcs8_pem(rsa_pem())
        .unwrap()
        .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let signer = DkimSigner::from_pem("example.com", "rsa1", pkcs1.as_bytes(), "pkcs1").unwrap();
    assert_eq!(signer.record(), rsa_signer().record());
    if !dkimpy_available() {
        return;
    }
    assert_eq!(
        dkimpy_verdict(&signed(&signer, MESSAGE), &signer.record()),
        "pass"
    );
}

#[test]
fn tampering_fails_verification() {
    if !dkimpy_available() {
        return;
    }
    for signer in [rsa_signer(), ed25519_signer()] {
        let message = signed(&signer, MESSAGE);
        let text = String::from_utf8(message).unwrap();
        // Relaxed canonicalisation forgives whitespace, not content.
        let body = text.replace("The numbers are in.", "The numbers are out.");
        assert_eq!(dkimpy_verdict(body.as_bytes(), &signer.record()), "fail");
        let subject = text.replace("Subject: Quarterly", "Subject: Annual");
        assert_eq!(dkimpy_verdict(subject.as_bytes(), &signer.record()), "fail");
        // Whitespace changes and an unsigned header field are allowed.
        let relaxed = text
            .replace("Quarterly  report", "Quarterly report")
            .replace("X-Unsigned: not in the list", "X-Unsigned: changed");
        assert_eq!(
            dkimpy_verdict(relaxed.as_bytes(), &signer.record()),
            "pass",
            "{:?}",
            signer.algorithm()
        );
    }
}

#[test]
fn the_key_store_signs_for_the_from_domain_then_the_envelope_domain() {
    let mut store = DkimKeyStore::new();
    store.insert(rsa_signer()).unwrap();
    let other = generate_key("other.test", "ed1", DkimAlgorithm::Ed25519).unwrap();
    store.insert(other.signer).unwrap();
    let duplicate = generate_key("other.test", "ed2", DkimAlgorithm::Ed25519).unwrap();
    assert!(store.insert(duplicate.signer).is_err());

    // From alice@mail.example.com: the parent domain's key.
    let header = store
        .sign(MESSAGE.as_bytes(), Some("bounces@other.test"), SIGNED_AT)
        .unwrap()
        .unwrap();
    assert!(header.contains("d=example.com"), "{header}");
    let foreign = MESSAGE.replace("alice@mail.example.com", "alice@elsewhere.example");
    let header = store
        .sign(foreign.as_bytes(), Some("bounces@Other.Test"), SIGNED_AT)
        .unwrap()
        .unwrap();
    assert!(header.contains("d=other.test"), "{header}");
    assert_eq!(
        store
            .sign(foreign.as_bytes(), Some("x@unknown.example"), SIGNED_AT)
            .unwrap(),
        None
    );
    assert_eq!(
        store.sign(foreign.as_bytes(), None, SIGNED_AT).unwrap(),
        None
    );
}

#[test]
fn bad_keys_and_messages_are_errors_not_panics() {
    let signer = ed25519_signer();
    let no_from = "To: bob@example.net\r\n\r\nbody\r\n";
    assert!(
        signer
            .sign(no_from.as_bytes(), SIGNED_AT)
            .unwrap_err()
            .to_string()
            .contains("no From")
    );
    assert!(signer.sign(b"", SIGNED_AT).is_err());
    for pem in [
        &b"not a key"[..],
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ] {
        assert!(DkimSigner::from_pem("example.com", "s", pem, "junk").is_err());
    }
    let error = DkimSigner::from_pem("example.com", "a.b", rsa_pem().as_bytes(), "k").unwrap_err();
    assert!(error.to_string().contains("selector"), "{error}");
}
