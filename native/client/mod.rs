//! Our memcached client: the text protocol on tokio, one pool of connections per server.
//!
//! Every operation has a deadline that covers connecting, retries and reading the reply. A
//! connection that timed out or erred is dropped, never returned to the pool. Keys are validated
//! before anything is sent, so a malformed key can never inject a second command.

mod connection;
pub mod reply;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::time::{Instant, timeout_at};

use connection::{Connection, Failure};
pub use reply::Item;
use reply::{Expect, Reply};

use crate::error::{Error, Result};

/// Longest key memcached accepts.
pub const MAX_KEY_LEN: usize = 250;
/// Idle connections kept per server.
const MAX_IDLE: usize = 32;
/// Relative expiry times above this are taken by memcached as absolute Unix times.
const MAX_RELATIVE_EXPIRY: u64 = 30 * 24 * 3600;

/// Checks that a key can be sent: 1 to 250 printable ASCII bytes, no space or control byte.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Error::InvalidKey(format!(
            "length {} is outside 1..={MAX_KEY_LEN}",
            key.len()
        )));
    }
    if let Some(b) = key.bytes().find(|b| !b.is_ascii_graphic()) {
        return Err(Error::InvalidKey(format!(
            "byte {b:#04x} is not printable ASCII"
        )));
    }
    Ok(())
}

/// The expiry field for a lifetime in seconds: 0 never expires, lifetimes beyond memcached's
/// 30-day relative limit become absolute times.
pub fn expiry(seconds: u64) -> u64 {
    if seconds <= MAX_RELATIVE_EXPIRY {
        seconds
    } else {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        now + seconds
    }
}

/// Outcome of a compare-and-swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// The value was replaced.
    Stored,
    /// Someone changed the item since it was read.
    Exists,
    /// The item is gone.
    NotFound,
}

/// One command of a [`NodeClient::pipeline`].
#[derive(Debug, Clone, Copy)]
pub enum Command<'a> {
    /// Stores unconditionally.
    Set {
        /// The key.
        key: &'a str,
        /// The value.
        value: &'a [u8],
        /// Memcached's expiry field.
        exptime: u64,
    },
    /// Renews an item's expiry.
    Touch {
        /// The key.
        key: &'a str,
        /// Memcached's expiry field.
        exptime: u64,
    },
    /// Removes an item.
    Delete(&'a str),
}

/// The answer to one pipelined [`Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A `Set` stored its value.
    Stored,
    /// Whether the item of a `Touch` or `Delete` existed.
    Found(bool),
}

/// The client of one memcached server.
pub struct NodeClient {
    node: String,
    address: String,
    timeout: Duration,
    retries: u32,
    retry_backoff: Duration,
    max_value: usize,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient")
            .field("node", &self.node)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl NodeClient {
    /// A client of the server at `address`, called `node` in errors. `timeout` is the deadline of
    /// each operation, `retries` the extra attempts on a fresh connection after a connection
    /// failure (each after `retry_backoff`, within the deadline), `max_value` the largest value
    /// accepted from the server.
    pub fn new(
        node: &str,
        address: &str,
        timeout: Duration,
        retries: u32,
        retry_backoff: Duration,
        max_value: usize,
    ) -> Self {
        NodeClient {
            node: node.to_owned(),
            address: address.to_owned(),
            timeout,
            retries,
            retry_backoff,
            max_value,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The node id this client serves.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Reads one item.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.retrieve("get", &[key]).await?.pop().map(|i| i.data))
    }

    /// Reads one item with its CAS unique.
    pub async fn gets(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>> {
        let item = self.retrieve("gets", &[key]).await?.pop();
        item.map(|i| match i.cas {
            Some(cas) => Ok((i.data, cas)),
            None => Err(self.protocol("gets reply without CAS unique")),
        })
        .transpose()
    }

    /// Reads several items in one round trip; missing keys are absent from the map.
    pub async fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, Vec<u8>>> {
        let items = self.retrieve("get", keys).await?;
        Ok(items.into_iter().map(|i| (i.key, i.data)).collect())
    }

    /// Stores unconditionally.
    pub async fn set(&self, key: &str, value: &[u8], exptime: u64) -> Result<()> {
        match self.store("set", key, value, exptime, None).await? {
            Reply::Stored => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    /// Stores only if the key is absent; `false` when it exists.
    pub async fn add(&self, key: &str, value: &[u8], exptime: u64) -> Result<bool> {
        match self.store("add", key, value, exptime, None).await? {
            Reply::Stored => Ok(true),
            Reply::NotStored => Ok(false),
            other => Err(self.unexpected(other)),
        }
    }

    /// Stores only if the item is unchanged since `gets` returned `cas`.
    pub async fn cas(&self, key: &str, value: &[u8], exptime: u64, cas: u64) -> Result<CasOutcome> {
        match self.store("cas", key, value, exptime, Some(cas)).await? {
            Reply::Stored => Ok(CasOutcome::Stored),
            Reply::Exists => Ok(CasOutcome::Exists),
            Reply::NotFound => Ok(CasOutcome::NotFound),
            other => Err(self.unexpected(other)),
        }
    }

    /// Renews an item's expiry; `false` when the item is absent.
    pub async fn touch(&self, key: &str, exptime: u64) -> Result<bool> {
        let mut request = Vec::new();
        push_touch(&mut request, key, exptime)?;
        match self.call(&request, Expect::Line).await? {
            Reply::Touched => Ok(true),
            Reply::NotFound => Ok(false),
            other => Err(self.unexpected(other)),
        }
    }

    /// Removes an item; `false` when it was absent.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let mut request = Vec::new();
        push_delete(&mut request, key)?;
        match self.call(&request, Expect::Line).await? {
            Reply::Deleted => Ok(true),
            Reply::NotFound => Ok(false),
            other => Err(self.unexpected(other)),
        }
    }

    /// Increments a decimal counter; `None` when the item is absent.
    pub async fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        validate_key(key)?;
        let request = format!("incr {key} {delta}\r\n");
        match self.call(request.as_bytes(), Expect::Line).await? {
            Reply::Number(n) => Ok(Some(n)),
            Reply::NotFound => Ok(None),
            other => Err(self.unexpected(other)),
        }
    }

    /// The server's version string; also the health probe.
    pub async fn version(&self) -> Result<String> {
        match self.call(b"version\r\n", Expect::Line).await? {
            Reply::Version(v) => Ok(v),
            other => Err(self.unexpected(other)),
        }
    }

    async fn retrieve(&self, verb: &str, keys: &[&str]) -> Result<Vec<Item>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut request = Vec::new();
        push_retrieve(&mut request, verb, keys)?;
        match self
            .call(
                &request,
                Expect::Items {
                    keys,
                    cas: verb == "gets",
                },
            )
            .await?
        {
            Reply::Items(items) => Ok(items),
            other => Err(self.unexpected(other)),
        }
    }

    async fn store(
        &self,
        verb: &str,
        key: &str,
        value: &[u8],
        exptime: u64,
        cas: Option<u64>,
    ) -> Result<Reply> {
        let mut request = Vec::with_capacity(value.len() + key.len() + 64);
        push_store(&mut request, verb, key, value, exptime, cas)?;
        self.call(&request, Expect::Line)
            .await
            .map_err(|e| self.too_large(e, value.len()))
    }

    /// Sends `commands` together and reads their answers, in order: one round trip however
    /// many commands. Any failure fails the whole pipeline (its commands may or may not have
    /// run, and each can safely run again).
    pub async fn pipeline(&self, commands: &[Command<'_>]) -> Result<Vec<Answer>> {
        let mut request = Vec::new();
        let mut expects = Vec::with_capacity(commands.len());
        let mut largest = 0;
        for command in commands {
            match *command {
                Command::Set {
                    key,
                    value,
                    exptime,
                } => {
                    push_store(&mut request, "set", key, value, exptime, None)?;
                    largest = largest.max(value.len());
                    expects.push(Expect::Line);
                }
                Command::Touch { key, exptime } => {
                    push_touch(&mut request, key, exptime)?;
                    expects.push(Expect::Line);
                }
                Command::Delete(key) => {
                    push_delete(&mut request, key)?;
                    expects.push(Expect::Line);
                }
            }
        }
        let replies = self
            .exchange(&request, &expects)
            .await
            .map_err(|e| self.too_large(e, largest))?;
        commands
            .iter()
            .zip(replies)
            .map(|(command, reply)| match (command, reply) {
                (Command::Set { .. }, Reply::Stored) => Ok(Answer::Stored),
                (Command::Touch { .. }, Reply::Touched) | (Command::Delete(_), Reply::Deleted) => {
                    Ok(Answer::Found(true))
                }
                (Command::Touch { .. } | Command::Delete(_), Reply::NotFound) => {
                    Ok(Answer::Found(false))
                }
                (_, other) => Err(self.unexpected(other)),
            })
            .collect()
    }

    /// A server's refusal of a value as too large, as [`Error::TooLarge`].
    fn too_large(&self, e: Error, size: usize) -> Error {
        match e {
            Error::Server { message, .. } if message.contains("too large") => Error::TooLarge {
                size,
                detail: format!("node {} said `{message}`", self.node),
            },
            other => other,
        }
    }

    /// Runs one request under the deadline.
    async fn call(&self, request: &[u8], expect: Expect<'_>) -> Result<Reply> {
        let mut replies = self.exchange(request, &[expect]).await?;
        replies
            .pop()
            .ok_or_else(|| self.protocol("no reply to a request"))
    }

    /// Runs requests sent together under one deadline, retrying connection failures on fresh
    /// connections.
    async fn exchange(&self, request: &[u8], expects: &[Expect<'_>]) -> Result<Vec<Reply>> {
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0;
        loop {
            let pooled = if attempt == 0 {
                self.idle.lock().pop()
            } else {
                None
            };
            let outcome = timeout_at(deadline, async {
                let mut conn = match pooled {
                    Some(conn) => conn,
                    None => Connection::open(&self.address).await?,
                };
                let reply = conn.exchange(request, expects, self.max_value).await?;
                Ok::<_, Failure>((conn, reply))
            })
            .await;
            match outcome {
                Ok(Ok((conn, reply))) => {
                    let mut idle = self.idle.lock();
                    if idle.len() < MAX_IDLE {
                        idle.push(conn);
                    }
                    return Ok(reply);
                }
                Ok(Err(Failure::Io(e)))
                    if attempt < self.retries && Instant::now() + self.retry_backoff < deadline =>
                {
                    tracing::debug!(node = %self.node, error = %e, "retrying on a fresh connection");
                    tokio::time::sleep(self.retry_backoff).await;
                    attempt += 1;
                }
                Ok(Err(Failure::Io(e))) => {
                    return Err(Error::Io {
                        node: self.node.clone(),
                        detail: e.to_string(),
                    });
                }
                Ok(Err(Failure::Protocol(detail))) => return Err(self.protocol(detail)),
                // A bad value, not a bad node: the node stays up, the connection is dropped.
                Ok(Err(Failure::Oversized(len))) => {
                    return Err(Error::Corrupt(format!(
                        "node {} holds a value of {len} bytes, more than the {} accepted",
                        self.node, self.max_value
                    )));
                }
                Ok(Err(Failure::Refused(message))) => {
                    return Err(Error::Server {
                        node: self.node.clone(),
                        message,
                    });
                }
                Err(_) => {
                    return Err(Error::Timeout {
                        node: self.node.clone(),
                        after: self.timeout,
                    });
                }
            }
        }
    }

    fn protocol(&self, detail: impl Into<String>) -> Error {
        Error::Protocol {
            node: self.node.clone(),
            detail: detail.into(),
        }
    }

    fn unexpected(&self, reply: Reply) -> Error {
        self.protocol(format!("unexpected reply {reply:?}"))
    }
}

/// Appends a retrieval command for `keys`.
fn push_retrieve(out: &mut Vec<u8>, verb: &str, keys: &[&str]) -> Result<()> {
    out.extend_from_slice(verb.as_bytes());
    for key in keys {
        validate_key(key)?;
        out.push(b' ');
        out.extend_from_slice(key.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends a `touch` of `key`.
fn push_touch(out: &mut Vec<u8>, key: &str, exptime: u64) -> Result<()> {
    validate_key(key)?;
    out.extend_from_slice(format!("touch {key} {exptime}\r\n").as_bytes());
    Ok(())
}

/// Appends a `delete` of `key`.
fn push_delete(out: &mut Vec<u8>, key: &str) -> Result<()> {
    validate_key(key)?;
    out.extend_from_slice(format!("delete {key}\r\n").as_bytes());
    Ok(())
}

/// Appends a storage command with its data block.
fn push_store(
    out: &mut Vec<u8>,
    verb: &str,
    key: &str,
    value: &[u8],
    exptime: u64,
    cas: Option<u64>,
) -> Result<()> {
    validate_key(key)?;
    out.extend_from_slice(format!("{verb} {key} 0 {exptime} {}", value.len()).as_bytes());
    if let Some(cas) = cas {
        out.extend_from_slice(format!(" {cas}").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_inject_commands_are_refused() {
        for key in [
            "",
            "a b",
            "a\r\nflush_all",
            "tab\there",
            "nul\0",
            "é",
            &"k".repeat(251),
        ] {
            assert!(
                matches!(validate_key(key), Err(Error::InvalidKey(_))),
                "{key:?}"
            );
        }
        validate_key(&"k".repeat(250)).unwrap();
        validate_key("bak:shop:602F-n1").unwrap();
    }

    #[test]
    fn long_lifetimes_become_absolute() {
        assert_eq!(expiry(0), 0);
        assert_eq!(expiry(1800), 1800);
        assert!(expiry(MAX_RELATIVE_EXPIRY + 1) > 1_600_000_000);
    }
}
