//! User-record sources for quiver.
//!
//! - [`synthetic`]: a seeded, deterministic generator of randomuser-1.4-shaped records. It is
//!   pure and needs no network dependency (`default-features = false`), so the
//!   transformation side can use it for tests and benches.
//! - [`randomuser`] (feature `http`, on by default): a client of the randomuser.me API that
//!   forwards each result exactly as the API sent it.

#[cfg(feature = "http")]
pub mod randomuser;
pub mod synthetic;

/// One user record, ready to be sent to Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `login.uuid`, the message key.
    pub key: String,
    /// The record as compact JSON.
    pub value: String,
}

/// A random number for seeds and jitter; not for anything secret.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher as _, RandomState};
    RandomState::new().hash_one(std::time::Instant::now())
}
