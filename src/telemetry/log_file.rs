//! `[log] file`: the file the log writer thread appends to, reopened by
//! path on SIGHUP so that logrotate can move it away (nginx's `USR1`),
//! and when the path no longer names it (`at_path`, `Logging::watch`).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// What the path names now, against the file being written.
#[derive(Debug, PartialEq, Eq)]
pub enum AtPath {
    Same,
    /// Deleted, or renamed away (logrotate before its SIGHUP).
    Missing,
    /// Another file (renamed away and made again without a SIGHUP).
    Other,
}

/// A shared handle: the writer thread writes through one clone, the SIGHUP
/// handler reopens through another. Buffered: the writer thread flushes
/// after each batch of lines it takes from the queue, so a burst of
/// requests costs one write(2) rather than one per line.
#[derive(Clone)]
pub struct LogFile {
    path: PathBuf,
    out: Arc<Mutex<BufWriter<File>>>,
    /// The open file's device and inode, apart from `out`: the writer
    /// thread holds that lock while a write blocks (a full pipe).
    id: Arc<Mutex<Option<FileId>>>,
    /// Held across a reopen's open and swap: SIGHUP's and the watch's
    /// (`reopen_if_moved`) never cross, so a handle opened before a
    /// rotation is not put back after the rotation's own reopen.
    reopening: Arc<Mutex<()>>,
}

type FileId = (u64, u64);

// === impl LogFile ===

impl LogFile {
    pub fn open(path: &Path) -> io::Result<LogFile> {
        let file = append(path)?;
        Ok(LogFile {
            path: path.to_owned(),
            id: Arc::new(Mutex::new(file.metadata().ok().as_ref().map(id_of))),
            out: Arc::new(Mutex::new(BufWriter::new(file))),
            reopening: Arc::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open the path again (a new file if it was renamed) and write there
    /// from now on; what was buffered goes to the old file first. On error
    /// the old file stays in use.
    pub fn reopen(&self) -> io::Result<()> {
        let _one_at_a_time = self.reopening.lock().unwrap_or_else(|e| e.into_inner());
        self.swap()
    }

    /// Reopen unless the path names the file written to by now (a SIGHUP's
    /// reopen came first): `Ok(false)` then.
    pub fn reopen_if_moved(&self) -> io::Result<bool> {
        let _one_at_a_time = self.reopening.lock().unwrap_or_else(|e| e.into_inner());
        if self.at_path() == AtPath::Same {
            return Ok(false);
        }
        self.swap().map(|()| true)
    }

    fn swap(&self) -> io::Result<()> {
        let file = append(&self.path)?;
        let id = file.metadata().ok().as_ref().map(id_of);
        let mut out = self.lock();
        let _ = out.flush();
        *out = BufWriter::new(file);
        *self.id.lock().unwrap_or_else(|e| e.into_inner()) = id;
        Ok(())
    }

    /// Whether the path still names the file written to. A deleted log
    /// file takes its lines (and the disk space they fill) with it
    /// unseen; one renamed and replaced without a SIGHUP gets them all.
    pub fn at_path(&self) -> AtPath {
        let Some(open) = *self.id.lock().unwrap_or_else(|e| e.into_inner()) else {
            return AtPath::Same;
        };
        match std::fs::metadata(&self.path) {
            Ok(m) if id_of(&m) == open => AtPath::Same,
            Ok(_) => AtPath::Other,
            Err(e) if e.kind() == io::ErrorKind::NotFound => AtPath::Missing,
            // Cannot tell (a folder no longer searchable): leave it be.
            Err(_) => AtPath::Same,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BufWriter<File>> {
        // A panic while writing leaves a buffer, not broken state.
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.lock().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.lock().flush()
    }
}

fn id_of(meta: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// Created 0640 when missing (logs name users and clients), appended to.
fn append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_writes_to_a_new_file_after_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keygate.log");
        let mut log = LogFile::open(&path).unwrap();
        log.write_all(b"first\n").unwrap();
        std::fs::rename(&path, dir.path().join("keygate.log.1")).unwrap();
        log.reopen().unwrap();
        log.write_all(b"second\n").unwrap();
        log.flush().unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("keygate.log.1"), "first\n");
        assert_eq!(read("keygate.log"), "second\n");
    }

    #[test]
    fn a_file_deleted_or_replaced_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keygate.log");
        let log = LogFile::open(&path).unwrap();
        assert_eq!(log.at_path(), AtPath::Same);
        std::fs::rename(&path, dir.path().join("keygate.log.1")).unwrap();
        assert_eq!(log.at_path(), AtPath::Missing);
        std::fs::write(&path, "").unwrap();
        assert_eq!(log.at_path(), AtPath::Other);
        log.reopen().unwrap();
        assert_eq!(log.at_path(), AtPath::Same);
    }
}
