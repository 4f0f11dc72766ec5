//! The README's quick start works as written on a machine without any
//! hafront files, and every example passes `hafront check --skip-files`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::HAFRONT;

/// The repository root, where the README's commands run.
fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The example configurations shipped in `examples/`.
fn examples() -> Vec<PathBuf> {
    let mut examples: Vec<PathBuf> = std::fs::read_dir(repository().join("examples"))
        .expect("list examples")
        .map(|entry| entry.expect("example entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .collect();
    examples.sort();
    assert!(examples.len() >= 4, "{examples:?}");
    examples
}

/// Runs `hafront check` with `args`, returning its exit status success and
/// its output.
fn check(args: &[&str], config: &Path) -> (bool, String) {
    let output = Command::new(HAFRONT)
        .arg("check")
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .expect("run hafront check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn every_example_passes_check_with_skip_files() {
    for example in examples() {
        let (ok, output) = check(&["--skip-files"], &example);
        assert!(ok, "{}: {output}", example.display());
        assert_eq!(output.trim(), "OK", "{}", example.display());
    }
    // Without the flag, the absent secret files are what is reported.
    let (ok, output) = check(&[], &repository().join("examples/single-node.yaml"));
    assert!(!ok && output.contains("/etc/hafront/secrets/"), "{output}");
}

/// The shell commands of the README's quick start, in order.
fn quick_start_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repository().join("README.md")).expect("read README");
    let (_, section) = readme
        .split_once("## Quick start")
        .expect("a quick start section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut commands = Vec::new();
    let mut in_shell_block = false;
    for line in section.lines() {
        match line.trim() {
            "```sh" => in_shell_block = true,
            "```" => in_shell_block = false,
            command if in_shell_block && !command.is_empty() => commands.push(command.to_owned()),
            _ => {}
        }
    }
    commands
}

#[test]
fn readme_quick_start_works_verbatim_on_a_fresh_machine() {
    // The fresh machine is a temporary directory: /etc/hafront and the
    // examples live under it, and the built binary stands in for the
    // release one. Commands run without sudo (the test runs as the owner of
    // the files it creates).
    let root = tempfile::tempdir().expect("temp dir");
    let root_path = root.path().to_str().expect("utf-8 temp path");
    std::fs::create_dir(root.path().join("examples")).expect("mkdir examples");
    for example in examples() {
        let text = std::fs::read_to_string(&example).expect("read example");
        let name = example.file_name().expect("example name");
        std::fs::write(
            root.path().join("examples").join(name),
            text.replace("/etc/hafront", &format!("{root_path}/etc/hafront")),
        )
        .expect("write example");
    }
    let commands = quick_start_commands();
    assert!(
        commands
            .iter()
            .any(|command| command.contains("check --skip-files")),
        "{commands:#?}"
    );
    let mut checks = 0;
    for command in &commands {
        if command.starts_with("cargo build") || command.contains("hafront run") {
            continue;
        }
        let local = command
            .replace("sudo ", "")
            .replace("./target/release/hafront", HAFRONT)
            .replace("/etc/hafront", &format!("{root_path}/etc/hafront"));
        let output = Command::new("sh")
            .args(["-ec", &local])
            .current_dir(root.path())
            .output()
            .expect("run sh");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{command}\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        if command.contains("hafront check") {
            assert_eq!(stdout.trim(), "OK", "{command}");
            checks += 1;
        }
    }
    assert_eq!(checks, 2, "{commands:#?}");
}
