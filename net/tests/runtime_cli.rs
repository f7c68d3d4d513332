//! The `sluice` binary itself: configuration errors name file, line and key;
//! `check-config` accepts the shipped example; the administration commands work;
//! `serve` prints its listening lines and stops on SIGTERM.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

#[test]
fn check_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[server]\nhostname = \"mx.test\"\n\n[smtp]\nmax_recipeints = 5\n",
    )
    .unwrap();
    let output = sluice().arg("check-config").arg(&file).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let expected = format!("{}:5: smtp.max_recipeints: unknown field", file.display());
    assert!(stderr.contains(&expected), "{stderr}");

    std::fs::write(&file, "[listeners.mx]\naddress = \"127.0.0.1:99999\"\n").unwrap();
    let output = sluice().arg("check-config").arg(&file).output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains(":2: listeners.mx.address:"), "{stderr}");
}

#[test]
fn the_example_configuration_checks() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/sluice.example.toml");
    let output = sluice().arg("check-config").arg(example).output().unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn administration_commands_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = \"{}\"\n[listeners.mx]\naddress = \"127.0.0.1:0\"\n\
             [listeners.submission]\naddress = \"127.0.0.1:0\"\n\
             [listeners.submissions]\nenabled = false\n\
             [listeners.pop3]\naddress = \"127.0.0.1:0\"\n\
             [listeners.pop3s]\nenabled = false\n\
             [listeners.imap]\naddress = \"127.0.0.1:0\"\n\
             [listeners.imaps]\nenabled = false\n\
             [dns]\nnameservers = [\"127.0.0.1:9\"]\ntimeout_seconds = 1\nattempts = 1\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let output = sluice()
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    run(&["domain", "add", "example.test"]);
    run(&["user", "add", "bob@example.test", "--password", "pw1"]);
    let mut add = sluice()
        .args(["user", "add", "carol@example.test", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"from stdin\n")
        .unwrap();
    assert!(add.wait().unwrap().success());
    run(&["alias", "add", "info@example.test", "bob@example.test"]);
    run(&[
        "group",
        "add",
        "team@example.test",
        "bob@example.test",
        "carol@example.test",
    ]);
    assert_eq!(run(&["domain", "list"]), "example.test\n");
    assert_eq!(
        run(&["user", "list"]),
        "bob@example.test\ncarol@example.test\n"
    );
    assert!(run(&["alias", "list"]).contains("info@example.test bob@example.test"));
    assert!(run(&["group", "list"]).starts_with("team@example.test "));
    assert_eq!(run(&["queue", "list"]), "");

    let mut serve = sluice()
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(serve.stdout.take().unwrap()).lines();
    let mut listening = Vec::new();
    loop {
        let line = lines.next().unwrap().unwrap();
        if line == "ready" {
            break;
        }
        listening.push(line);
    }
    assert_eq!(listening.len(), 4, "{listening:?}");
    assert!(
        listening[0].starts_with("listening mx 127.0.0.1:"),
        "{listening:?}"
    );
    assert!(
        listening[1].starts_with("listening submission 127.0.0.1:"),
        "{listening:?}"
    );
    assert!(
        listening[2].starts_with("listening pop3 127.0.0.1:"),
        "{listening:?}"
    );
    assert!(
        listening[3].starts_with("listening imap 127.0.0.1:"),
        "{listening:?}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(serve.wait().unwrap().success(), "exit 0 after SIGTERM");
}
