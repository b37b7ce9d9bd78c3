//! Leaked keys die by themselves: secret scanners' reports and revocation
//! by whoever holds a key.
//!
//! * `signature`: the scanners' ECDSA P-256 signatures (ring);
//! * `key_source`: the scanners' published verifying keys, cached;
//! * `report`: the report format and keygate's answer;
//! * `possession`: the body of a revocation by whoever holds the keys;
//! * [`scan_report`]: gitleaks and detect-secrets reports, for the CLI;
//! * `routes`: the HTTP routes (`Leaks`); `page`: the found-key form.

pub(crate) mod key_source;
pub(crate) mod page;
pub(crate) mod possession;
pub(crate) mod report;
mod routes;
pub mod scan_report;
pub(crate) mod signature;

pub use self::routes::Leaks;
