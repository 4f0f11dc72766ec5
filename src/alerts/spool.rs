//! The durable mail queue: one file per mail in `state_dir/mail-queue`,
//! written to a temporary name, synced and renamed into place, and deleted
//! only once the SMTP server accepted the mail. A restart resends what is
//! left and nothing else.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Suffix of a queued mail.
const MAIL_SUFFIX: &str = ".mail";
/// Prefix of a mail still being written.
const TEMP_PREFIX: &str = ".tmp-";
/// Subdirectory for mails the server refused for good.
const FAILED_DIR: &str = "failed";

/// A mail with its SMTP envelope, as stored in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueuedMail {
    /// Envelope sender address.
    pub(crate) from: String,
    /// Envelope recipient addresses.
    pub(crate) to: Vec<String>,
    /// The RFC 5322 message, headers and body.
    pub(crate) message: Vec<u8>,
}

impl QueuedMail {
    /// File form: `from ADDR` and `to ADDR` lines, a blank line, the message.
    fn encode(&self) -> Vec<u8> {
        let mut bytes = format!("from {}\n", self.from).into_bytes();
        for to in &self.to {
            bytes.extend_from_slice(format!("to {to}\n").as_bytes());
        }
        bytes.push(b'\n');
        bytes.extend_from_slice(&self.message);
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let split = bytes.windows(2).position(|pair| pair == b"\n\n")?;
        let envelope = std::str::from_utf8(&bytes[..split]).ok()?;
        let mut from = None;
        let mut to = Vec::new();
        for line in envelope.lines() {
            match line.split_once(' ')? {
                ("from", address) => from = Some(address.to_owned()),
                ("to", address) => to.push(address.to_owned()),
                _ => return None,
            }
        }
        Some(QueuedMail {
            from: from?,
            to,
            message: bytes[split + 2..].to_vec(),
        })
    }
}

/// The queue directory.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    sequence: AtomicU64,
}

impl Spool {
    /// Opens (creating, owner-only) the queue directory and removes mails
    /// whose writing was interrupted: they were never acknowledged as queued.
    pub(crate) fn open(dir: PathBuf) -> io::Result<Self> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(Spool {
            dir,
            sequence: AtomicU64::new(0),
        })
    }

    /// The queue directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores a mail durably; file names sort in queueing order.
    pub(crate) fn push(&self, mail: &QueuedMail) -> io::Result<PathBuf> {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let name = format!("{nanos:024}-{sequence:06}{MAIL_SUFFIX}");
        let temp = self.dir.join(format!("{TEMP_PREFIX}{name}"));
        let path = self.dir.join(name);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(&mail.encode())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, &path)?;
        sync_dir(&self.dir)?;
        Ok(path)
    }

    /// Moves every mail queued in `other` (another directory) into this
    /// queue, keeping their names and so their order; returns how many.
    pub(crate) fn adopt(&self, other: &Spool) -> io::Result<usize> {
        let paths = other.list()?;
        for path in &paths {
            let target = self.dir.join(path.file_name().unwrap_or_default());
            if fs::rename(path, &target).is_err() {
                // Another file system: copy durably, then remove the original.
                let temp = self.dir.join(format!(
                    "{TEMP_PREFIX}{}",
                    path.file_name().unwrap_or_default().to_string_lossy()
                ));
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&temp)?;
                file.write_all(&fs::read(path)?)?;
                file.sync_all()?;
                fs::rename(&temp, &target)?;
                fs::remove_file(path)?;
            }
        }
        sync_dir(&self.dir)?;
        sync_dir(&other.dir)?;
        Ok(paths.len())
    }

    /// The queued mails, oldest first.
    pub(crate) fn list(&self) -> io::Result<Vec<PathBuf>> {
        let mut paths = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(MAIL_SUFFIX) && !name.starts_with(TEMP_PREFIX) {
                paths.push(entry.path());
            }
        }
        paths.sort();
        Ok(paths)
    }

    /// Reads a queued mail; `Ok(None)` when the file is not a mail we wrote.
    pub(crate) fn load(&self, path: &Path) -> io::Result<Option<QueuedMail>> {
        Ok(QueuedMail::decode(&fs::read(path)?))
    }

    /// Deletes a mail the server accepted.
    pub(crate) fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)?;
        sync_dir(&self.dir)
    }

    /// Moves a mail that can never be delivered to `failed/`, where an
    /// operator can read it; returns its new path.
    pub(crate) fn set_aside(&self, path: &Path) -> io::Result<PathBuf> {
        let failed = self.dir.join(FAILED_DIR);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&failed)?;
        let target = failed.join(path.file_name().unwrap_or_default());
        fs::rename(path, &target)?;
        sync_dir(&failed)?;
        sync_dir(&self.dir)?;
        Ok(target)
    }
}

/// Makes a directory's entries (a rename or a removal) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(subject: &str) -> QueuedMail {
        QueuedMail {
            from: "hafront@example.com".into(),
            to: vec!["ops@example.com".into(), "dba@example.com".into()],
            message: format!("Subject: {subject}\r\n\r\nbody\n\nwith blank lines\r\n").into_bytes(),
        }
    }

    #[test]
    fn mails_survive_reopening_in_order_and_leftover_temp_files_go() {
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join("mail-queue");
        let spool = Spool::open(queue.clone()).unwrap();
        let first = spool.push(&mail("one")).unwrap();
        spool.push(&mail("two")).unwrap();
        fs::write(queue.join(".tmp-interrupted.mail"), b"partial").unwrap();

        let reopened = Spool::open(queue.clone()).unwrap();
        let listed = reopened.list().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0], first);
        assert_eq!(reopened.load(&listed[0]).unwrap(), Some(mail("one")));
        assert_eq!(reopened.load(&listed[1]).unwrap(), Some(mail("two")));
        assert!(!queue.join(".tmp-interrupted.mail").exists());

        reopened.remove(&listed[0]).unwrap();
        let aside = reopened.set_aside(&listed[1]).unwrap();
        assert!(reopened.list().unwrap().is_empty());
        assert_eq!(reopened.load(&aside).unwrap(), Some(mail("two")));
    }

    #[test]
    fn foreign_files_are_not_mails() {
        assert_eq!(QueuedMail::decode(b"garbage"), None);
        assert_eq!(QueuedMail::decode(b"subject x\n\nbody"), None);
    }
}
