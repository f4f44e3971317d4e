//! The shared async runtime and the blocking bridge host threads use to wait on it.
//!
//! Host threads (Tomcat's request threads, a C server's workers) call blocking functions; the
//! futures they wait for are bounded by the operation deadlines, and background work (node
//! probes) runs on the runtime's own threads.

use std::cell::Cell;
use std::future::Future;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

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
    let _waiting = HostWait::enter();
    // Pinned here, so that the runtime moves a pointer rather than the future.
    let mut future = std::pin::pin!(future);
    if let Poll::Ready(output) = poll_once(future.as_mut()) {
        return Ok(output);
    }
    Ok(handle().block_on(future))
}

thread_local! {
    /// Whether this thread is a host thread waiting in [`wait`].
    static HOST_WAITS: Cell<bool> = const { Cell::new(false) };
}

/// Whether the code running is a future a host thread waits for in [`wait`]: there a system
/// call that blocks costs nothing the thread would not pay anyway, so the client reads and
/// writes its socket itself rather than through the runtime's I/O driver, which would wake a
/// runtime thread to wake this one for every reply. Never on a runtime thread, nor on a virtual
/// thread's call (polled once, never waited for there).
pub fn host_waits() -> bool {
    HOST_WAITS.get()
}

/// Marks the thread as waiting in [`wait`] until dropped (panics included).
struct HostWait(bool);

impl HostWait {
    fn enter() -> Self {
        HostWait(HOST_WAITS.replace(true))
    }
}

impl Drop for HostWait {
    fn drop(&mut self) {
        HOST_WAITS.set(self.0);
    }
}

/// Polls a future once in the runtime's context. Most calls of a request finish so (a sticky
/// request's begin and end send nothing, or queue a write), and then skip what blocking on the
/// runtime costs every time (its shared random seed is behind a lock). A future that is not
/// done re-registers its wake-ups with the waker of its next poll.
pub fn poll_once<F: Future + ?Sized>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    let _runtime = handle().enter();
    future.poll(&mut Context::from_waker(Waker::noop()))
}
