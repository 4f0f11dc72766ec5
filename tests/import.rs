//! `hafront import keepalived|haproxy FILE`: the binary prints a
//! configuration that `hafront check --skip-files` accepts, and a summary
//! on stderr.

use std::path::Path;
use std::process::{Command, Output};

fn hafront(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hafront"))
        .args(args)
        .output()
        .expect("run hafront")
}

fn sample(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("import/tests/samples")
        .join(path)
        .display()
        .to_string()
}

/// Imports `file` and checks the output with `hafront check --skip-files`.
fn import_and_check(kind: &str, file: &str) -> String {
    let imported = hafront(&["import", kind, file]);
    let stderr = String::from_utf8_lossy(&imported.stderr).into_owned();
    assert!(imported.status.success(), "import {file}: {stderr}");
    let directory = tempfile::tempdir().expect("temporary directory");
    let output = directory.path().join("hafront.yaml");
    std::fs::write(&output, &imported.stdout).expect("write the translation");
    let checked = hafront(&["check", "--skip-files", "-c", &output.display().to_string()]);
    assert!(
        checked.status.success(),
        "{}\n--- translation:\n{}",
        String::from_utf8_lossy(&checked.stderr),
        String::from_utf8_lossy(&imported.stdout)
    );
    assert_eq!(String::from_utf8_lossy(&checked.stdout), "OK\n");
    stderr
}

#[test]
fn import_prints_what_hafront_check_accepts_and_a_summary() {
    let file = sample("keepalived/keepalived.conf.vrrp");
    let stderr = import_and_check("keepalived", &file);
    assert!(
        stderr.contains(&format!(
            "hafront import: 11 line(s) of {file} not translated"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("create /etc/hafront/secrets/vrrp-VI_1.pass (mode 600)"),
        "{stderr}"
    );
    let file = sample("haproxy/configuration-txt-checks.cfg");
    let stderr = import_and_check("haproxy", &file);
    assert!(
        stderr.contains(&format!(
            "hafront import: 0 line(s) of {file} not translated"
        )),
        "{stderr}"
    );
}

#[test]
fn import_fails_when_nothing_translates_or_the_file_is_unreadable() {
    let file = sample("haproxy/debian-haproxy.cfg");
    let imported = hafront(&["import", "haproxy", &file]);
    assert_eq!(imported.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&imported.stderr);
    assert!(
        stderr.contains(&format!(
            "nothing in {file} translates to hafront: the output configures nothing"
        )),
        "{stderr}"
    );
    let missing = hafront(&["import", "keepalived", "/nonexistent/keepalived.conf"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "hafront import: /nonexistent/keepalived.conf: cannot read: No such file or directory (os error 2)\n"
    );
    assert!(missing.stdout.is_empty());
}
