//! msm: a memcached-backed session manager core.
//!
//! Sessions of a web container (Tomcat through the Java shim, or any C host) are kept in a
//! cluster of memcached servers so that another process can take them over, and so that a
//! memcached outage does not take the site down. This crate is the whole policy: ids, keys, the
//! stored format, routing, failover, locking and statistics. The `ffi` module holds the two thin
//! faces (C ABI and JNI) and is the only place that knows about foreign callers.

pub mod broadcast;
pub mod client;
pub mod cluster;
pub mod config;
pub mod copies;
pub mod envelope;
pub mod error;
pub mod events;
pub mod fingerprint;
pub mod ids;
pub mod keys;
pub mod locking;
pub mod logging;
pub mod manager;
pub mod membership;
pub mod mode;
pub mod request;
pub mod runtime;
pub mod session;
pub mod stats;
pub mod validity;

pub mod ffi;

/// The shipped libraries allocate with mimalloc: under glibc's malloc, a Tomcat writing sessions
/// spent a tenth of its CPU in `malloc`, `free` and their consolidation of freed blocks, every
/// request allocating and freeing blocks of a kilobyte and more from many threads.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use broadcast::{EventKind, SessionEvent};
pub use config::{Config, ConfigBuilder};
pub use copies::Loaded;
pub use error::{Error, Result};
pub use events::ExpiredSession;
pub use ids::SessionId;
pub use locking::SessionLock;
pub use manager::SessionManager;
pub use mode::{NonSticky, Sticky};
pub use request::{BackupOutcome, Ended, HostCopy, Lookup, Outcome, Request, RequestStart};
pub use session::SessionData;
