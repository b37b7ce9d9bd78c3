//! Leaked keys die by themselves (issue 12): secret scanners' reports,
//! revocation by possession, the shipped detection rule, and signed
//! webhooks to the keys' owners.

mod config;
mod detect;
