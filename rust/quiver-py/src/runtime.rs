//! The module's tokio runtime, created lazily in the process that uses it.
//!
//! PySpark forks its Python workers from a daemon. A runtime's threads do not survive a
//! fork, so a runtime (and every connection driven by one) is only valid in the process
//! that created it: each one is keyed by process id and made anew after a fork.

use std::sync::{Arc, Mutex};
use tokio::runtime::Runtime;

static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

pub fn runtime() -> std::io::Result<Arc<Runtime>> {
    let pid = std::process::id();
    // A poisoned lock only means a panic elsewhere; the slot itself is still consistent.
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, rt)) = slot.as_ref()
        && *owner == pid
    {
        return Ok(rt.clone());
    }
    if let Some((_, inherited)) = slot.take() {
        // Dropping a runtime inherited through fork would wait for threads that only
        // exist in the parent.
        std::mem::forget(inherited);
    }
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            // The calling Python thread runs the CPU work in block_on; the workers only
            // drive I/O such as the Cassandra connections.
            .worker_threads(1)
            .thread_name("quiver-py")
            .enable_all()
            .build()?,
    );
    *slot = Some((pid, rt.clone()));
    Ok(rt)
}
