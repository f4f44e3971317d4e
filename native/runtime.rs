//! The shared async runtime and the blocking bridge host threads use to wait on it.
//!
//! Host threads (Tomcat's request threads, a C server's workers) call blocking functions; the
//! futures they wait for are bounded by the operation deadlines, and background work (node
//! probes) runs on the runtime's own threads.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

use crate::error::{Error, Result};

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("msm-runtime")
            .enable_all()
            .build()
            .expect("cannot start the msm runtime")
    })
}

/// The shared runtime's handle, for spawning background work.
pub fn handle() -> &'static Handle {
    runtime().handle()
}

/// Runs a fallible future to completion on the calling thread (see [`wait`]).
pub fn block_on<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    wait(future)?
}

/// Runs a future to completion on the calling thread. Refused (instead of panicking) when the
/// calling thread already drives an async runtime.
pub fn wait<T>(future: impl Future<Output = T>) -> Result<T> {
    if Handle::try_current().is_ok() {
        return Err(Error::NestedRuntime);
    }
    // Pinned here, so that the runtime moves a pointer rather than the future.
    let future = std::pin::pin!(future);
    Ok(handle().block_on(future))
}
