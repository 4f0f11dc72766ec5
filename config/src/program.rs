//! Programs the daemon runs (notify scripts, exec checks) and files it reads
//! (secrets, keys): where they are found and whether only trusted users can
//! change or read them.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};

/// `PATH` given to scripts, and searched for a command without a slash.
pub const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Checks that a program the daemon runs (notify script or exec check) can be run safely: it exists (as an
/// absolute path, or a bare name found in [`SCRIPT_PATH`]), is a regular
/// executable file, and neither it nor any directory above it can be
/// changed by anyone but root or the daemon's user: each is owned by one of
/// them and writable by neither its group nor others (sticky directories
/// such as `/tmp` excepted).
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
        let refuse = |why: String| {
            format!(
                "{} {why}; refusing to run {}",
                candidate.display(),
                path.display()
            )
        };
        if let Some(owner) = untrusted_owner(&metadata) {
            return Err(refuse(format!(
                "is owned by {owner}, who could change it (chown root {})",
                candidate.display()
            )));
        }
        let mode = metadata.mode();
        let sticky_dir = metadata.is_dir() && mode & 0o1000 != 0;
        if mode & 0o002 != 0 && !sticky_dir {
            return Err(refuse(format!(
                "is writable by others (chmod o-w {})",
                candidate.display()
            )));
        }
        if mode & 0o020 != 0 && !sticky_dir {
            let group = Gid::from_raw(metadata.gid());
            let group = match Group::from_gid(group) {
                Ok(Some(group)) => group.name,
                _ => group.to_string(),
            };
            return Err(refuse(format!(
                "is writable by its group {group} (chmod g-w {})",
                candidate.display()
            )));
        }
    }
    Ok(())
}

/// The owner of a file, named, if it is neither root nor the user this
/// process runs as (the daemon's user): someone who could change the file
/// or its permissions.
pub(crate) fn untrusted_owner(metadata: &fs::Metadata) -> Option<String> {
    let owner = Uid::from_raw(metadata.uid());
    if owner.is_root() || owner == Uid::effective() {
        return None;
    }
    Some(match User::from_uid(owner) {
        Ok(Some(user)) => format!("user {} (uid {owner})", user.name),
        _ => format!("uid {owner}"),
    })
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
    fn check_program_refuses_missing_unexecutable_writable_and_foreign_scripts() {
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

        fs::set_permissions(&script, fs::Permissions::from_mode(0o775)).unwrap();
        let err = check_program(&script).unwrap_err();
        assert!(err.contains("is writable by its group"), "{err}");

        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(check_program(&script), Ok(()));

        for mode in [0o777, 0o770] {
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).unwrap();
            let err = check_program(&script).unwrap_err();
            assert!(err.starts_with(&dir.path().display().to_string()), "{err}");
        }
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(check_program(&script), Ok(()));

        if Uid::effective().is_root() {
            std::os::unix::fs::chown(&script, Some(65534), None).unwrap();
            let err = check_program(&script).unwrap_err();
            assert!(
                err.contains("is owned by") && err.contains("uid 65534"),
                "{err}"
            );
            std::os::unix::fs::chown(&script, Some(0), None).unwrap();
            std::os::unix::fs::chown(dir.path(), Some(65534), None).unwrap();
            let err = check_program(&script).unwrap_err();
            assert!(
                err.starts_with(&format!("{} is owned by", dir.path().display())),
                "{err}"
            );
        }

        assert_eq!(check_program(Path::new("true")), Ok(()));
        assert!(check_program(Path::new("./true")).is_err());
        assert!(check_program(Path::new("no-such-command-hafront")).is_err());
    }
}
