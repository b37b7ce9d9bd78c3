//! HTTP/2 frame boundaries in a byte stream (RFC 9113 §4.1), found without
//! buffering: only the 9-byte headers are read, payloads are skipped. One
//! scanner per direction; the client's starts after the connection preface.

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;

pub const FLAG_END_STREAM: u8 = 0x1;
/// ACK on SETTINGS and PING.
pub const FLAG_ACK: u8 = 0x1;

/// `ENHANCE_YOUR_CALM` (RFC 9113 §7): the peer generates excessive load.
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

#[derive(Debug, Default)]
pub struct Scanner {
    /// Header bytes of the frame being read, and how many are in.
    head: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    skip: usize,
}

// === impl Scanner ===

impl Scanner {
    /// Feed the next bytes of the stream; `on_frame` sees each frame header
    /// as soon as its 9 bytes are in (before its payload).
    pub fn scan(&mut self, mut bytes: &[u8], mut on_frame: impl FnMut(Head)) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.have).min(bytes.len());
            self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == 9 {
                self.have = 0;
                let h = &self.head;
                let head = Head {
                    len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
                    kind: h[3],
                    flags: h[4],
                    stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                };
                self.skip = head.len as usize;
                on_frame(head);
            }
        }
    }

    /// No frame half-way through: a frame written now starts cleanly.
    pub fn at_boundary(&self) -> bool {
        self.have == 0 && self.skip == 0
    }
}

/// A GOAWAY frame (RFC 9113 §6.8) with `debug` as its additional data.
pub fn goaway(last_stream: u32, code: u32, debug: &[u8]) -> Vec<u8> {
    let len = 8 + debug.len();
    let mut f = Vec::with_capacity(9 + len);
    f.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    f.extend_from_slice(&[GOAWAY, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(&code.to_be_bytes());
    f.extend_from_slice(debug);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.push(kind);
        f.push(flags);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn finds_every_frame_whatever_the_split() {
        let mut stream = frame(HEADERS, 0x5, 1, &[0x82; 20]);
        stream.extend(frame(PING, 0, 0, b"12345678"));
        stream.extend(frame(DATA, FLAG_END_STREAM, 3, &[]));
        stream.extend(goaway(7, ENHANCE_YOUR_CALM, b"calm"));
        let want = vec![
            (HEADERS, 0x5, 1, 20),
            (PING, 0, 0, 8),
            (DATA, 1, 3, 0),
            (GOAWAY, 0, 0, 12),
        ];
        for step in 1..=stream.len() {
            let mut s = Scanner::default();
            let mut seen = Vec::new();
            for chunk in stream.chunks(step) {
                s.scan(chunk, |h| seen.push((h.kind, h.flags, h.stream, h.len)));
            }
            assert_eq!(seen, want, "chunks of {step}");
            assert!(s.at_boundary());
        }
    }

    #[test]
    fn a_partial_frame_is_not_a_boundary() {
        let mut s = Scanner::default();
        let f = frame(PING, 0, 0, b"12345678");
        s.scan(&f[..5], |_| {});
        assert!(!s.at_boundary());
        s.scan(&f[5..12], |_| {});
        assert!(!s.at_boundary());
        s.scan(&f[12..], |_| {});
        assert!(s.at_boundary());
    }
}
