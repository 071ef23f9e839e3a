//! Values that belong to the process that made them, and the module's tokio runtime.
//!
//! PySpark forks its Python workers from a daemon. A runtime's threads do not survive a
//! fork, so a runtime (and every connection driven by one) is only valid in the process
//! that created it: each is kept with its process id and made anew after a fork.

use std::sync::{Arc, Mutex};
use tokio::runtime::Runtime;

/// A value made lazily, once per process.
pub struct PerProcess<T>(Mutex<Option<(u32, Arc<T>)>>);

impl<T> PerProcess<T> {
    pub const fn new() -> Self {
        Self(Mutex::new(None))
    }

    /// This process's value, made by `make` on first use here.
    pub fn get_or_try_init<E>(&self, make: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E> {
        let pid = std::process::id();
        // A poisoned lock only means a panic elsewhere; the slot itself is still consistent.
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((owner, value)) = slot.as_ref()
            && *owner == pid
        {
            return Ok(value.clone());
        }
        if let Some((_, inherited)) = slot.take() {
            // Dropping a value inherited through fork could wait for threads (runtime
            // workers, connection tasks) that only exist in the parent.
            std::mem::forget(inherited);
        }
        let value = Arc::new(make()?);
        *slot = Some((pid, value.clone()));
        Ok(value)
    }
}

static RUNTIME: PerProcess<Runtime> = PerProcess::new();

pub fn runtime() -> std::io::Result<Arc<Runtime>> {
    RUNTIME.get_or_try_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            // The calling Python thread runs the CPU work in block_on; the workers only
            // drive I/O such as the Cassandra connections.
            .worker_threads(1)
            .thread_name("quiver-py")
            .enable_all()
            .build()
    })
}
