//! Leaked keys die by themselves: secret scanners' reports and revocation
//! by whoever holds a key.
//!
//! * [`signature`]: the scanners' ECDSA P-256 signatures (ring);
//! * [`key_source`]: the scanners' published verifying keys, cached.

pub mod key_source;
pub mod signature;
