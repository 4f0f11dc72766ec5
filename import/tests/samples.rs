//! Real configurations: the samples keepalived's and HAProxy's Debian
//! packages ship (copied under tests/samples/, and read where Debian
//! installs them) translate into configurations hafront's validator
//! accepts, as `hafront check --skip-files` does.

use std::path::{Path, PathBuf};

use hafront_config::ParseOptions;
use hafront_import::Translation;

/// The samples copied into this repository.
fn repository_samples(kind: &str) -> Vec<PathBuf> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/samples")
        .join(kind);
    files_in(&directory, |_| true)
}

/// The regular files in `directory` whose name passes `keep`, sorted.
fn files_in(directory: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
        .collect();
    files.sort();
    files
}

/// Skips the calling test for `why`, or fails under `HAFRONT_REQUIRE_EVERY_TEST`.
fn skip(why: &str) {
    assert!(
        std::env::var_os("HAFRONT_REQUIRE_EVERY_TEST").is_none(),
        "cannot run: {why} (HAFRONT_REQUIRE_EVERY_TEST is set, so this is a failure)"
    );
    eprintln!("skipped: {why}");
}

/// Checks one translation: valid for hafront when it configures
/// something, else only comments; every comment names its source.
fn assert_valid(path: &Path, translation: &Translation) {
    let name = path.display().to_string();
    for line in translation.yaml.lines() {
        let comment = line.trim_start().strip_prefix("# ");
        if let Some(comment) = comment
            && !comment.starts_with("hafront configuration translated")
            && !comment.starts_with("Lines marked")
        {
            assert!(
                comment.starts_with(&format!("hafront import: {name}:"))
                    || comment.starts_with("hafront import: /"),
                "{name}: a comment that names no source line: {line}"
            );
        }
    }
    if translation.configures_something {
        if let Err(errors) = hafront_config::parse_with(
            &translation.yaml,
            "translated.yaml",
            ParseOptions { check_files: false },
        ) {
            panic!(
                "{name}: the translation does not validate:\n{errors}\n--- translation:\n{}",
                translation.yaml
            );
        }
    } else {
        assert!(
            translation
                .yaml
                .lines()
                .all(|line| line.trim().is_empty() || line.trim_start().starts_with('#')),
            "{name}: configures nothing but holds YAML:\n{}",
            translation.yaml
        );
        assert!(translation.untranslated > 0, "{name}: nothing at all");
    }
}

#[test]
fn the_keepalived_samples_translate_into_valid_configurations() {
    let samples = repository_samples("keepalived");
    assert!(samples.len() >= 10, "samples missing: {samples:?}");
    for sample in &samples {
        let translation = hafront_import::keepalived(sample)
            .unwrap_or_else(|error| panic!("{}: {error}", sample.display()));
        assert!(
            translation.configures_something,
            "{}: nothing translated:\n{}",
            sample.display(),
            translation.yaml
        );
        assert_valid(sample, &translation);
    }
}

#[test]
fn the_haproxy_samples_translate_into_valid_configurations() {
    let samples = repository_samples("haproxy");
    assert!(samples.len() >= 5, "samples missing: {samples:?}");
    for sample in &samples {
        let translation = hafront_import::haproxy(sample)
            .unwrap_or_else(|error| panic!("{}: {error}", sample.display()));
        let name = sample.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // Debian's default haproxy.cfg holds only global and defaults sections.
        assert_eq!(
            translation.configures_something,
            name != "debian-haproxy.cfg",
            "{name}:\n{}",
            translation.yaml
        );
        assert_valid(sample, &translation);
    }
}

#[test]
fn the_samples_debian_installs_translate_into_valid_configurations() {
    let keepalived = files_in(Path::new("/usr/share/doc/keepalived/samples"), |name| {
        name.starts_with("keepalived.conf.")
    });
    let mut haproxy = files_in(Path::new("/usr/share/doc/haproxy/examples"), |name| {
        name.ends_with(".cfg")
    });
    haproxy.extend(
        [Path::new("/etc/haproxy/haproxy.cfg")]
            .iter()
            .filter(|path| path.is_file())
            .map(|path| path.to_path_buf()),
    );
    if keepalived.is_empty() || haproxy.len() < 2 {
        skip(
            "the keepalived and haproxy packages' samples are not installed (test.sh installs them)",
        );
        return;
    }
    for sample in &keepalived {
        let translation = hafront_import::keepalived(sample)
            .unwrap_or_else(|error| panic!("{}: {error}", sample.display()));
        assert!(translation.configures_something, "{}", sample.display());
        assert_valid(sample, &translation);
    }
    for sample in &haproxy {
        let translation = hafront_import::haproxy(sample)
            .unwrap_or_else(|error| panic!("{}: {error}", sample.display()));
        assert_valid(sample, &translation);
    }
}
