//! The Debian package, built by `dist/build-deb.sh` from the binary under test and installed
//! with dpkg on this machine: the binary, man pages, completions, unit and a commented
//! conffile are in place, the service is neither enabled nor started, the shipped
//! configuration passes `hafront check` once its secret exists, and a purge removes every
//! file the package and the service created. The package is purged on every exit path.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::HAFRONT;

const PACKAGE: &str = "hafront";
const CONFIG: &str = "/etc/hafront/hafront.yaml";
/// What the package, its postinst and the service create outside the package's file list.
const CREATED: [&str; 4] = [
    "/etc/hafront",
    "/etc/hafront/secrets",
    "/var/lib/hafront",
    "/run/hafront",
];

/// Runs `program` with `args`, with the sbin directories on PATH.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .output()
        .unwrap_or_else(|error| panic!("run {program}: {error}"))
}

/// stdout and stderr of `output`, for messages.
fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Whether dpkg knows the package at all (installed, or its conffiles left).
fn known_to_dpkg() -> bool {
    run("dpkg-query", &["-W", "-f", "${Status}", PACKAGE])
        .status
        .success()
}

/// The installed package; purged when dropped, however the test ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if known_to_dpkg() {
            let purge = run("dpkg", &["--purge", PACKAGE]);
            if !purge.status.success() {
                eprintln!("dpkg --purge {PACKAGE} failed: {}", text(&purge));
            }
        }
    }
}

/// Why this machine cannot run the test, if it cannot: not root, a program missing, or a
/// hafront already here that the purge would remove.
fn cannot_run() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("installing a package needs root".to_owned());
    }
    for (program, args) in [
        ("dpkg", &["--version"][..]),
        ("man", &["--version"]),
        ("gzip", &["--version"]),
        ("cargo", &["deb", "--version"]),
    ] {
        let works = Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|output| output.status.success());
        if !works {
            return Some(format!("`{program} {}` does not run", args.join(" ")));
        }
    }
    if known_to_dpkg() {
        return Some(format!(
            "the {PACKAGE} package is installed here; this test installs and purges it"
        ));
    }
    ["/usr/sbin/hafront", "/etc/hafront", "/var/lib/hafront"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .map(|path| format!("{path} exists and the test's purge would remove it; move it away"))
}

/// Builds the package from the binary under test into `output`; returns the .deb.
fn build(output: &Path) -> PathBuf {
    let products = Path::new(HAFRONT).parent().expect("the binary's directory");
    let target = products.parent().expect("the target directory");
    let repository = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = Command::new(repository.join("dist/build-deb.sh"))
        .args([
            "--profile",
            "dev",
            "--no-build",
            "--fast",
            "--no-dbgsym",
            "--quiet",
        ])
        .arg("--output")
        .arg(output)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("run dist/build-deb.sh");
    assert!(built.status.success(), "build-deb.sh: {}", text(&built));
    let debs: Vec<PathBuf> = fs::read_dir(output)
        .expect("read the output directory")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one package: {debs:?}");
    debs[0].clone()
}

/// Processes running the installed binary.
fn running_installed_binary() -> Vec<String> {
    fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let exe = fs::read_link(entry.path().join("exe")).ok()?;
            (exe == Path::new("/usr/sbin/hafront"))
                .then(|| entry.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

/// The secret files the uncommented lines of `config` name, as `{ file: PATH }`.
fn secret_files(config: &str) -> Vec<String> {
    config
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let path = line.split("file:").nth(1)?.trim_start();
            let end = path.find([' ', '}']).unwrap_or(path.len());
            Some(path[..end].to_owned())
        })
        .collect()
}

#[test]
fn the_package_installs_documents_itself_and_purges_what_it_added() {
    if let Some(why) = cannot_run() {
        support::skip(&why);
        return;
    }
    let output = tempfile::tempdir().expect("temp dir");
    let deb = build(output.path());
    let installed = Installed;
    let install = run("dpkg", &["-i", deb.to_str().expect("a UTF-8 path")]);
    assert!(install.status.success(), "dpkg -i: {}", text(&install));

    // The binary, found on root's PATH, and its manual.
    let version = run("hafront", &["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("hafront {}", env!("CARGO_PKG_VERSION"))
    );
    for (page, expected) in [
        (&["hafront"][..], "/usr/share/man/man1/hafront.1.gz"),
        (&["hafront-check"], "/usr/share/man/man1/hafront-check.1.gz"),
        (
            &["5", "hafront.yaml"],
            "/usr/share/man/man5/hafront.yaml.5.gz",
        ),
    ] {
        let found = run("man", &[&["-w"][..], page].concat());
        assert_eq!(
            String::from_utf8_lossy(&found.stdout).trim(),
            expected,
            "man -w {page:?}: {}",
            text(&found)
        );
    }
    // hafront.yaml(5) as installed documents every key the schema accepts, in its section.
    let page = run("zcat", &["/usr/share/man/man5/hafront.yaml.5.gz"]);
    let page = String::from_utf8_lossy(&page.stdout);
    for (path, keys) in hafront_config::reference::schema_keys() {
        let title = if path.is_empty() { "top level" } else { path };
        let section = page
            .split(".SS ")
            .find(|section| section.starts_with(&format!("\"{title}\"\n")))
            .unwrap_or_else(|| panic!("no section {title:?} in hafront.yaml(5)"));
        for key in keys {
            assert!(
                section.contains(&format!("\n.B {key}\n")),
                "hafront.yaml(5) does not document {title}: {key}"
            );
        }
    }

    // Completions for the three shells; bash's completes a subcommand.
    let bash = "/usr/share/bash-completion/completions/hafront";
    let zsh = fs::read_to_string("/usr/share/zsh/vendor-completions/_hafront").expect("zsh");
    let fish =
        fs::read_to_string("/usr/share/fish/vendor_completions.d/hafront.fish").expect("fish");
    assert!(zsh.starts_with("#compdef hafront"), "{zsh}");
    assert!(fish.contains("complete -c hafront"), "{fish}");
    let completed = run(
        "bash",
        &[
            "-c",
            &format!(
                "source {bash}; COMP_WORDS=(hafront swi); COMP_CWORD=1; _hafront hafront swi hafront; echo \"${{COMPREPLY[@]}}\""
            ),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&completed.stdout).trim(),
        "switchover",
        "{}",
        text(&completed)
    );

    // The unit is installed but neither enabled nor started.
    assert!(Path::new("/usr/lib/systemd/system/hafront.service").is_file());
    let enabled = run("systemctl", &["--root=/", "is-enabled", "hafront.service"]);
    assert_eq!(
        String::from_utf8_lossy(&enabled.stdout).trim(),
        "disabled",
        "{}",
        text(&enabled)
    );
    assert_eq!(running_installed_binary(), Vec::<String>::new());
    if Path::new("/run/systemd/system").exists() {
        let active = run("systemctl", &["is-active", "hafront.service"]);
        assert_ne!(String::from_utf8_lossy(&active.stdout).trim(), "active");
    }

    // The configuration is a conffile; it checks once its secret exists.
    let conffiles = run("dpkg-query", &["-W", "-f", "${Conffiles}", PACKAGE]);
    assert!(
        String::from_utf8_lossy(&conffiles.stdout).contains(CONFIG),
        "{}",
        text(&conffiles)
    );
    let secrets = fs::metadata("/etc/hafront/secrets").expect("the secrets directory");
    assert_eq!(secrets.permissions().mode() & 0o777, 0o700);
    let shipped = fs::read_to_string(CONFIG).expect("the shipped configuration");
    let missing = run("hafront", &["check"]);
    assert!(
        !missing.status.success() && text(&missing).contains(&format!("{CONFIG}:")),
        "check before the secrets exist: {}",
        text(&missing)
    );
    let skipped = run("hafront", &["check", "--skip-files"]);
    assert!(skipped.status.success(), "{}", text(&skipped));
    let secret_files = secret_files(&shipped);
    assert!(!secret_files.is_empty(), "no secret in:\n{shipped}");
    for secret in &secret_files {
        fs::write(secret, "password\n").expect("write a secret");
        fs::set_permissions(secret, fs::Permissions::from_mode(0o600)).expect("chmod 600");
    }
    let checked = run("hafront", &["check"]);
    assert_eq!(
        String::from_utf8_lossy(&checked.stdout).trim(),
        "OK",
        "{}",
        text(&checked)
    );

    // What a running service leaves: its state and runtime directories.
    fs::create_dir_all("/var/lib/hafront/mail-queue").expect("state directory");
    fs::create_dir_all("/run/hafront").expect("runtime directory");

    // Purge: every file of the package, the conffile, the secrets and the state are gone.
    let listed = run("dpkg", &["-L", PACKAGE]);
    let files: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|path| Path::new(path).is_file())
        .map(str::to_owned)
        .collect();
    assert!(files.len() > 20, "{files:?}");
    let purge = run("dpkg", &["--purge", PACKAGE]);
    assert!(purge.status.success(), "dpkg --purge: {}", text(&purge));
    drop(installed);
    assert!(!known_to_dpkg(), "dpkg still knows {PACKAGE}");
    for path in files.iter().map(String::as_str).chain(CREATED) {
        assert!(!Path::new(path).exists(), "{path} is left after the purge");
    }
}

#[test]
fn secret_files_are_read_from_uncommented_lines_only() {
    assert_eq!(
        secret_files(
            "a:\n  password: { file: /s/one.pass }\n#  password: { file: /s/two }\n  p:\n    file: /s/three\n"
        ),
        ["/s/one.pass", "/s/three"]
    );
}
