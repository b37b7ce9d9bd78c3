//! Lines the writer thread could not write (a full disk, a file system
//! gone read-only, a closed pipe). tracing-appender's worker drops such a
//! line without a word, so its writer is wrapped here: each line whose
//! write fails is counted, and the error kept to be said
//! (`Logging::watch`, `keygate_log_dropped_lines_total`).

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What the writer thread failed to write, shared with the watcher.
#[derive(Default)]
pub struct WriteErrors {
    lost: AtomicU64,
    /// Of `lost`, how many were said (on stderr, or in the log).
    said: AtomicU64,
    last: Mutex<Option<String>>,
}

impl WriteErrors {
    /// `out`, its failed lines counted here.
    pub fn counting<W: Write>(self: &Arc<Self>, out: W) -> Counting<W> {
        Counting {
            out,
            errors: self.clone(),
        }
    }

    /// Lines lost since the start.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Whether lines were lost that are not said yet.
    pub fn any_unsaid(&self) -> bool {
        self.lost() > self.said.load(Ordering::Relaxed)
    }

    /// Lines lost and not said yet, now taken as said.
    pub fn take_unsaid(&self) -> u64 {
        let lost = self.lost();
        lost.saturating_sub(self.said.swap(lost, Ordering::Relaxed))
    }

    /// The last write error, as `io::Error` says it.
    pub fn last_error(&self) -> Option<String> {
        self.lock().clone()
    }

    fn failed(&self, e: &io::Error, lines: u64) {
        self.lost.fetch_add(lines, Ordering::Relaxed);
        *self.lock() = Some(e.to_string());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A writer whose failed `write_all` (one per line: the worker's call)
/// counts a lost line. A failed flush loses nothing: a `BufWriter` keeps
/// what it could not write and tries again with the next batch, and the
/// lines that no longer fit beside it fail their `write_all`.
pub struct Counting<W> {
    out: W,
    errors: Arc<WriteErrors>,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.write_all(buf).inspect_err(|e| {
            // An access line is one `write_all` of one line; an event
            // of tracing's is too (its formatter writes the whole line).
            self.errors.failed(e, 1);
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush().inspect_err(|e| self.errors.failed(e, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_that_cannot_be_written_are_counted_with_the_error() {
        let errors = Arc::new(WriteErrors::default());
        let full = std::fs::OpenOptions::new()
            .append(true)
            .open("/dev/full")
            .unwrap();
        // As the log file is: buffered, so the first lines wait in the
        // buffer and only those that no longer fit are lost.
        let mut out = errors.counting(io::BufWriter::with_capacity(100, full));
        out.write_all(&[b'x'; 60]).unwrap();
        assert!(out.flush().is_err());
        assert_eq!(errors.lost(), 0, "still buffered");
        for _ in 0..3 {
            assert!(out.write_all(&[b'y'; 60]).is_err());
        }
        assert_eq!(errors.lost(), 3);
        let said = errors.last_error().unwrap();
        assert!(said.contains("No space left on device"), "{said}");
    }
}
