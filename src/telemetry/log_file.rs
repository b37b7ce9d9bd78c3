//! `[log] file`: the file the log writer thread appends to, reopened by
//! path on SIGHUP so that logrotate can move it away (nginx's `USR1`).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A shared handle: the writer thread writes through one clone, the SIGHUP
/// handler reopens through another. Buffered: the writer thread flushes
/// after each batch of lines it takes from the queue, so a burst of
/// requests costs one write(2) rather than one per line.
#[derive(Clone)]
pub struct LogFile {
    path: PathBuf,
    out: Arc<Mutex<BufWriter<File>>>,
}

// === impl LogFile ===

impl LogFile {
    pub fn open(path: &Path) -> io::Result<LogFile> {
        Ok(LogFile {
            path: path.to_owned(),
            out: Arc::new(Mutex::new(BufWriter::new(append(path)?))),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open the path again (a new file if it was renamed) and write there
    /// from now on; what was buffered goes to the old file first. On error
    /// the old file stays in use.
    pub fn reopen(&self) -> io::Result<()> {
        let file = append(&self.path)?;
        let mut out = self.lock();
        let _ = out.flush();
        *out = BufWriter::new(file);
        Ok(())
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
}
