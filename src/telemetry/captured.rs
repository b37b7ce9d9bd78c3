//! Test support: what a `tracing` subscriber writes, kept in memory to be
//! read back as the lines a reader of the log would see.

use std::sync::{Arc, Mutex};

/// A writer into a buffer its clones share: hand a clone to
/// `with_writer(move || buffer.clone())`, read the text from the original.
#[derive(Clone, Default)]
pub struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
