//! `sluice dkim generate`: the key lands under `<data_dir>/dkim/` with mode 0600, an
//! existing key is never overwritten, and the printed TXT record is the one that
//! verifies the key's signatures (checked with dkimpy when it is installed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_net::dkim::{DkimError, KeyFileError, load_key, load_key_dir};
use std::path::Path;
use std::process::{Command, Output};

fn generate(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--config")
        .arg(config)
        .args(["dkim", "generate"])
        .args(args)
        .output()
        .unwrap()
}

/// The TXT value from a zone line `name IN TXT "a" "b"`: the strings concatenated.
fn txt_value(line: &str) -> String {
    let (_, strings) = line.split_once(" IN TXT ").unwrap();
    strings.split('"').skip(1).step_by(2).collect()
}

#[test]
fn generate_writes_a_private_key_once_and_prints_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = {:?}\n",
            data_dir.display().to_string()
        ),
    )
    .unwrap();

    for (algorithm, selector, key_type) in [("rsa", "s1", "rsa"), ("ed25519", "s2", "ed25519")] {
        let output = generate(
            &config,
            &[
                "Example.COM",
                "--selector",
                selector,
                "--algorithm",
                algorithm,
            ],
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut lines = stdout.lines();
        let path = data_dir.join(format!("dkim/example.com.{selector}.key"));
        assert_eq!(lines.next().unwrap(), format!("key {}", path.display()));
        let record = lines.next().unwrap();
        assert!(
            record.starts_with(&format!(
                "{selector}._domainkey.example.com IN TXT \"v=DKIM1; k={key_type}; p="
            )),
            "{record}"
        );
        assert!(record.split('"').skip(1).step_by(2).all(|s| s.len() <= 255));

        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());

        // The printed record belongs to the written key.
        let signer = load_key("example.com", selector, &path).unwrap();
        assert_eq!(signer.record().value, txt_value(record));

        // A second run refuses and leaves the key alone.
        let before = std::fs::read(&path).unwrap();
        let again = generate(
            &config,
            &[
                "example.com",
                "--selector",
                selector,
                "--algorithm",
                algorithm,
            ],
        );
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
    let dkim_dir = std::fs::metadata(data_dir.join("dkim")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(dkim_dir.permissions().mode() & 0o777, 0o700);

    // The key store reads the folder back: one key per domain.
    let error = load_key_dir(&data_dir.join("dkim")).unwrap_err();
    assert!(
        matches!(error, KeyFileError::Key(DkimError::DuplicateDomain { .. })),
        "{error}"
    );
    std::fs::remove_file(data_dir.join("dkim/example.com.s2.key")).unwrap();
    let store = load_key_dir(&data_dir.join("dkim")).unwrap();
    assert_eq!(
        store.signer_for("Sub.Example.com.").unwrap().selector(),
        "s1"
    );
    assert!(store.signer_for("example.org").is_none());

    let bad = generate(&config, &["example.com", "--selector", "a.b"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("selector"));
}
