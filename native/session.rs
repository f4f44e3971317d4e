//! The session as the core stores it: metadata and opaque attribute bytes.
//!
//! Hosts turn their attributes into bytes (Java serialization in Tomcat, anything in a C host);
//! the core never interprets them.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// One session's content, independent of how it is encoded for memcached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionData {
    /// Creation time, milliseconds since the Unix epoch.
    pub creation_time: u64,
    /// Last access time, milliseconds since the Unix epoch.
    pub last_accessed: u64,
    /// Seconds of inactivity after which the session expires; 0 or less never expires.
    pub max_inactive: i32,
    /// Incremented by every store; lets a newer copy win over an older one.
    pub version: u64,
    /// The authentication type, where the host has one (`FORM`, `BASIC`, ...).
    pub auth_type: Option<String>,
    /// The authenticated principal's name, where the host has one.
    pub principal: Option<String>,
    /// Attribute names and their serialized values, ordered by name.
    pub attributes: BTreeMap<String, Vec<u8>>,
    /// Non-sticky: the read of memcached this content derives from, numbered by the core when
    /// a request's lookup hands the session out. The host hands it back unchanged with the
    /// content at the request's end, which then compares the content with what that read
    /// found, whichever of the host's requests read it. `None`: created by the host, or read
    /// where nothing is compared. Never stored.
    pub read: Option<u64>,
}

impl SessionData {
    /// A new, empty session created now.
    pub fn new(max_inactive: i32) -> Self {
        let now = now_millis();
        SessionData {
            creation_time: now,
            last_accessed: now,
            max_inactive,
            ..SessionData::default()
        }
    }
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
