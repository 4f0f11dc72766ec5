//! Programs the daemon runs (notify scripts, exec checks): where they are
//! found and whether they are safe to run.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `PATH` given to scripts, and searched for a command without a slash.
pub const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Checks that a program the daemon runs (notify script or exec check) can be run safely: it exists (as an
/// absolute path, or a bare name found in [`SCRIPT_PATH`]), is a regular
/// executable file, and neither it nor any directory above it is writable
/// by others (sticky directories such as `/tmp` excepted), so nobody but
/// its owner can change what the daemon runs.
pub fn check_program(program: &Path) -> Result<(), String> {
    let path = resolve_program(program)?;
    let metadata = fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !metadata.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if metadata.permissions().mode() & 0o111 == 0 {
        return Err(format!("{} is not executable", path.display()));
    }
    let real = fs::canonicalize(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    for candidate in path.ancestors().chain(real.ancestors()) {
        if candidate.as_os_str().is_empty() {
            continue;
        }
        let metadata =
            fs::metadata(candidate).map_err(|e| format!("{}: {e}", candidate.display()))?;
        let mode = metadata.mode();
        let sticky_dir = metadata.is_dir() && mode & 0o1000 != 0;
        if mode & 0o002 != 0 && !sticky_dir {
            return Err(format!(
                "{} is writable by others; refusing to run {}",
                candidate.display(),
                path.display()
            ));
        }
    }
    Ok(())
}

/// The file a program name designates: itself when absolute, else the
/// first match in [`SCRIPT_PATH`].
fn resolve_program(program: &Path) -> Result<PathBuf, String> {
    if program.is_absolute() {
        return Ok(program.to_path_buf());
    }
    if program.components().count() != 1 {
        return Err(format!(
            "{}: give an absolute path or a bare command name",
            program.display()
        ));
    }
    SCRIPT_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| format!("{}: not found in {SCRIPT_PATH}", program.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_program_reports_missing_unexecutable_and_writable_scripts() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("notify.sh");
        assert!(check_program(&script).unwrap_err().contains("No such file"));

        fs::write(&script, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            check_program(&script)
                .unwrap_err()
                .contains("not executable")
        );

        fs::set_permissions(&script, fs::Permissions::from_mode(0o757)).unwrap();
        assert!(
            check_program(&script)
                .unwrap_err()
                .contains("writable by others")
        );

        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(check_program(&script), Ok(()));

        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_program(&script).unwrap_err();
        assert!(err.starts_with(&dir.path().display().to_string()), "{err}");

        assert_eq!(check_program(Path::new("true")), Ok(()));
        assert!(check_program(Path::new("./true")).is_err());
        assert!(check_program(Path::new("no-such-command-hafront")).is_err());
    }
}
