//! The one error type of the core.
//!
//! Every failure a host can meet is a variant here, so that each face maps errors to its own
//! vocabulary (C status codes, Java exceptions) in exactly one place.

use std::time::Duration;

/// What went wrong in a core operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A configuration attribute is unknown, malformed or inconsistent with another one.
    #[error("invalid configuration: attribute `{attribute}` = `{value}`: {reason}")]
    Config {
        /// The attribute name as the host spelled it.
        attribute: String,
        /// The offending value.
        value: String,
        /// Why it was refused.
        reason: String,
    },

    /// A session id did not parse; hosts treat it as "no session".
    #[error("invalid session id")]
    InvalidId,

    /// A memcached key would be malformed (too long, whitespace or control bytes); never sent.
    #[error("invalid memcached key: {0}")]
    InvalidKey(String),

    /// A stored value failed its integrity tag or could not be decoded.
    #[error("corrupt session data: {0}")]
    Corrupt(String),

    /// The value is larger than the memcached server accepts.
    #[error(
        "session of {size} bytes is larger than memcached's item size limit \
         (memcached -I, 1 MiB by default): {detail}"
    )]
    TooLarge {
        /// Size of the encoded value in bytes.
        size: usize,
        /// What the server or the limit check said.
        detail: String,
    },

    /// A node did not answer within the operation's deadline.
    #[error("memcached node {node} did not answer within {after:?}")]
    Timeout {
        /// The node id.
        node: String,
        /// The deadline that ran out.
        after: Duration,
    },

    /// A node is marked down and is being probed; nothing is sent to it meanwhile.
    #[error("memcached node {0} is down")]
    NodeDown(String),

    /// A connection-level failure talking to a node.
    #[error("memcached node {node}: {detail}")]
    Io {
        /// The node id.
        node: String,
        /// The underlying error.
        detail: String,
    },

    /// The server answered something the protocol does not allow at that point.
    #[error("memcached node {node}: protocol error: {detail}")]
    Protocol {
        /// The node id.
        node: String,
        /// What was unexpected.
        detail: String,
    },

    /// The server refused a well-formed command (`SERVER_ERROR`, `CLIENT_ERROR`).
    #[error("memcached node {node} refused the command: {message}")]
    Server {
        /// The node id.
        node: String,
        /// The server's message.
        message: String,
    },

    /// No node of the cluster can take the operation.
    #[error("no memcached node is available")]
    Unavailable,

    /// The session lock could not be acquired within the configured wait.
    #[error("could not lock session within {0:?}")]
    LockTimeout(Duration),

    /// Every generated id collided with a reserved one (only possible with a broken generator).
    #[error("could not reserve a unique session id after {0} attempts")]
    IdExhausted(u32),

    /// A blocking call was made from a thread that is itself driving an async runtime.
    #[error("blocking call made from inside an async runtime")]
    NestedRuntime,
}

impl Error {
    /// True when the failure says something about the node's health (it should be marked down),
    /// as opposed to an answer about the request itself.
    pub fn is_node_failure(&self) -> bool {
        matches!(
            self,
            Error::Timeout { .. } | Error::Io { .. } | Error::Protocol { .. } | Error::NodeDown(_)
        )
    }

    /// True when the cluster could not do what was asked (a node failed, or none was left), as
    /// opposed to refusing it: the near cache then stands in.
    pub fn is_cluster_failure(&self) -> bool {
        self.is_node_failure() || matches!(self, Error::Unavailable)
    }

    pub(crate) fn config(attribute: &str, value: &str, reason: impl Into<String>) -> Self {
        Error::Config {
            attribute: attribute.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The core's result type.
pub type Result<T> = std::result::Result<T, Error>;
