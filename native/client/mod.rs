//! Our memcached client: the text protocol on tokio, two pools of connections per server: the
//! runtime's, and blocking ones for host threads that wait for their calls anyway
//! ([`crate::runtime::host_waits`]), which read and write them themselves.
//!
//! Every operation has a deadline that covers connecting, retries and reading the reply. A
//! connection that timed out or erred is dropped, never returned to the pool. Keys are validated
//! before anything is sent, so a malformed key can never inject a second command.
//!
//! Every command, single or pipelined, is encoded the same way ([`Command`]s, in `command`),
//! sent by a `connection`, which only writes and buffers, and its replies are read by the pure
//! parser in [`reply`]. A client made [`NodeClient::together`] (sticky mode) sends the requests
//! answered by single lines through the server's `writer`, with other callers' on one
//! connection; the others take a pooled connection each.

mod command;
mod connection;
pub mod reply;
mod security;
mod writer;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout_at};

pub use command::{Answer, Command, MAX_KEY_LEN, expiry, validate_key};
use connection::{Connection, Failure};
pub use reply::Item;
use reply::{Expect, Reply};
pub use security::Security;

use crate::error::{Error, Result};
use crate::runtime;

/// Idle connections kept per server.
const MAX_IDLE: usize = 32;

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

/// The client of one memcached server.
pub struct NodeClient {
    node: String,
    address: String,
    timeout: Duration,
    retries: u32,
    retry_backoff: Duration,
    max_value: usize,
    idle: Mutex<Vec<Connection>>,
    /// Idle connections of host threads that wait ([`crate::runtime::host_waits`]): blocking
    /// ones, plain connections only.
    idle_blocking: Mutex<Vec<Connection>>,
    /// How connections are set up (TLS, authentication), and the host their certificate names.
    security: Arc<Security>,
    host: String,
    /// Whether requests answered by single lines go to the writer ([`NodeClient::together`]).
    together: bool,
    /// Sends requests answered by single lines together (see [`writer`]); started at first use.
    writer: OnceLock<mpsc::UnboundedSender<writer::Queued>>,
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
            idle_blocking: Mutex::new(Vec::new()),
            security: Security::plain(),
            host: address
                .rsplit_once(':')
                .map_or(address, |(host, _)| host)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            together: false,
            writer: OnceLock::new(),
        }
    }

    /// The same client, sending the requests of many callers that are answered by single lines
    /// (stores, touches, deletes) together, on one connection ([`writer`]). They then wait for
    /// the server's writer, behind the batch in flight: for sticky backups, whose order per
    /// session the backup queue keeps, never for non-sticky writes, whose second copy must not
    /// trail the release of the session's lock on the other node.
    pub fn together(mut self, together: bool) -> Self {
        self.together = together;
        self
    }

    /// The same client, its connections set up as `security` says (TLS, authentication).
    pub fn with_security(mut self, security: Arc<Security>) -> Self {
        self.security = security;
        self
    }

    /// Opens a connection of its own and waits until the server closes it (or breaks it):
    /// memcached closes every connection when it stops, so this tells at once that the node
    /// is gone, before any request meets it. An `Err` is a failure to open it.
    pub async fn watch(&self) -> Result<Error> {
        let deadline = Instant::now() + self.timeout;
        let mut conn = match timeout_at(deadline, self.open(deadline)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(failure)) => return Err(self.failed(failure)),
            Err(_) => return Err(self.timed_out()),
        };
        let detail = conn.closed().await;
        Ok(Error::Io {
            node: self.node.clone(),
            detail,
        })
    }

    async fn open(&self, deadline: Instant) -> std::result::Result<Connection, Failure> {
        Connection::open(&self.address, &self.host, &self.security, deadline).await
    }

    /// The node id this client serves.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Reads one item.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.one(Command::Get(&[key])).await? {
            Answer::Items(mut items) => Ok(items.pop().map(|i| i.data)),
            other => Err(self.unexpected(other)),
        }
    }

    /// Reads one item with its CAS unique.
    pub async fn gets(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>> {
        match self.one(Command::Gets(&[key])).await? {
            Answer::Items(mut items) => items
                .pop()
                .map(|i| match i.cas {
                    Some(cas) => Ok((i.data, cas)),
                    None => Err(self.protocol("gets reply without CAS unique")),
                })
                .transpose(),
            other => Err(self.unexpected(other)),
        }
    }

    /// Reads several items in one round trip; missing keys are absent from the map.
    pub async fn get_multi(&self, keys: &[&str]) -> Result<HashMap<String, Vec<u8>>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        match self.one(Command::Get(keys)).await? {
            Answer::Items(items) => Ok(items.into_iter().map(|i| (i.key, i.data)).collect()),
            other => Err(self.unexpected(other)),
        }
    }

    /// Reads several items with their CAS uniques in one round trip; missing keys are absent.
    pub async fn gets_multi(&self, keys: &[&str]) -> Result<HashMap<String, (Vec<u8>, u64)>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        match self.one(Command::Gets(keys)).await? {
            Answer::Items(items) => Ok(items
                .into_iter()
                .filter_map(|i| Some((i.key, (i.data, i.cas?))))
                .collect()),
            other => Err(self.unexpected(other)),
        }
    }

    /// Stores unconditionally.
    pub async fn set(&self, key: &str, value: &[u8], exptime: u64) -> Result<()> {
        match self
            .one(Command::Set {
                key,
                value,
                exptime,
            })
            .await?
        {
            Answer::Stored => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    /// Stores only if the key is absent; `false` when it exists.
    pub async fn add(&self, key: &str, value: &[u8], exptime: u64) -> Result<bool> {
        match self
            .one(Command::Add {
                key,
                value,
                exptime,
            })
            .await?
        {
            Answer::Stored => Ok(true),
            Answer::NotStored => Ok(false),
            other => Err(self.unexpected(other)),
        }
    }

    /// Stores only if the item is unchanged since `gets` returned `cas`.
    pub async fn cas(&self, key: &str, value: &[u8], exptime: u64, cas: u64) -> Result<CasOutcome> {
        let command = Command::Cas {
            key,
            value,
            exptime,
            cas,
        };
        match self.one(command).await? {
            Answer::Stored => Ok(CasOutcome::Stored),
            Answer::Exists => Ok(CasOutcome::Exists),
            Answer::Found(false) => Ok(CasOutcome::NotFound),
            other => Err(self.unexpected(other)),
        }
    }

    /// Renews an item's expiry; `false` when the item is absent.
    pub async fn touch(&self, key: &str, exptime: u64) -> Result<bool> {
        match self.one(Command::Touch { key, exptime }).await? {
            Answer::Found(found) => Ok(found),
            other => Err(self.unexpected(other)),
        }
    }

    /// Removes an item; `false` when it was absent.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        match self.one(Command::Delete(key)).await? {
            Answer::Found(found) => Ok(found),
            other => Err(self.unexpected(other)),
        }
    }

    /// Increments a decimal counter; `None` when the item is absent.
    pub async fn incr(&self, key: &str, delta: u64) -> Result<Option<u64>> {
        match self.one(Command::Incr { key, delta }).await? {
            Answer::Number(n) => Ok(Some(n)),
            Answer::Found(false) => Ok(None),
            other => Err(self.unexpected(other)),
        }
    }

    /// The server's version string; also the health probe.
    pub async fn version(&self) -> Result<String> {
        match self.one(Command::Version).await? {
            Answer::Version(v) => Ok(v),
            other => Err(self.unexpected(other)),
        }
    }

    /// Runs one command: a pipeline of one.
    async fn one(&self, command: Command<'_>) -> Result<Answer> {
        self.pipeline(&[command])
            .await?
            .pop()
            .ok_or_else(|| self.protocol("no reply to a request"))
    }

    /// Sends `commands` together and reads their answers, in order: one round trip however
    /// many commands. Every command, single ones included, goes this way. Any failure fails the
    /// whole pipeline (its commands may or may not have run, and each can safely run again).
    pub async fn pipeline(&self, commands: &[Command<'_>]) -> Result<Vec<Answer>> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let values: usize = commands.iter().map(Command::value_len).sum();
        let mut request = Vec::with_capacity(values + 64 * commands.len());
        for command in commands {
            command.encode(&mut request)?;
        }
        let expects: Vec<Expect<'_>> = commands.iter().map(Command::expect).collect();
        let largest = commands.iter().map(Command::value_len).max().unwrap_or(0);
        let replies = if self.together && expects.iter().all(|e| matches!(e, Expect::Line)) {
            self.exchange_together(request.into(), expects.len()).await
        } else {
            self.exchange(&request, &expects).await
        };
        let replies = replies.map_err(|e| self.too_large(e, largest))?;
        commands
            .iter()
            .zip(replies)
            .map(|(command, reply)| command.answer(reply).map_err(|r| self.unexpected(r)))
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

    /// Runs requests sent together under one deadline, retrying connection failures on fresh
    /// connections. A host thread that waits for them sends and reads on a blocking connection
    /// itself (plain connections only: TLS goes through the runtime).
    async fn exchange(&self, request: &[u8], expects: &[Expect<'_>]) -> Result<Vec<Reply>> {
        let blocking = self.blocking();
        self.retrying(|attempt, deadline| async move {
            let mut conn = self.connection(attempt, blocking, deadline).await?;
            let reply = conn
                .exchange(request, expects, self.max_value, deadline)
                .await?;
            self.keep(conn, blocking);
            Ok(reply)
        })
        .await
    }

    /// Whether the caller is a host thread that waits, served by blocking connections (plain
    /// ones only: TLS goes through the runtime).
    fn blocking(&self) -> bool {
        runtime::host_waits() && !self.security.is_tls()
    }

    /// The pool of idle connections of blocking callers, or of the runtime's.
    fn idle(&self, blocking: bool) -> &Mutex<Vec<Connection>> {
        if blocking {
            &self.idle_blocking
        } else {
            &self.idle
        }
    }

    /// A connection for an attempt: a pooled one first, a fresh one for a retry.
    async fn connection(
        &self,
        attempt: u32,
        blocking: bool,
        deadline: Instant,
    ) -> std::result::Result<Connection, Failure> {
        if attempt == 0
            && let Some(conn) = self.take_idle(self.idle(blocking))
        {
            return Ok(conn);
        }
        if blocking {
            Connection::open_blocking(&self.address, &self.security, deadline).await
        } else {
            self.open(deadline).await
        }
    }

    /// Puts a connection that served its exchange back in its pool, unless the pool is full.
    fn keep(&self, conn: Connection, blocking: bool) {
        let mut idle = self.idle(blocking).lock();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// [`NodeClient::exchange`] for requests answered by `lines` single lines: sent together
    /// with other callers' by the server's writer, and retried as `exchange` retries.
    async fn exchange_together(&self, request: Arc<[u8]>, lines: usize) -> Result<Vec<Reply>> {
        let writer = self.writer.get_or_init(|| {
            writer::start(writer::Target {
                address: self.address.clone(),
                host: self.host.clone(),
                security: Arc::clone(&self.security),
                timeout: self.timeout,
            })
        });
        let stopped = || Failure::Protocol("the node's writer stopped".into());
        self.retrying(|_, _| {
            let (done, outcome) = oneshot::channel();
            let queued = writer::Queued {
                request: Arc::clone(&request),
                lines,
                done,
            };
            let sent = writer.send(queued);
            async move {
                sent.map_err(|_| stopped())?;
                outcome.await.map_err(|_| stopped())?
            }
        })
        .await
    }

    /// Runs `attempt` (given its number, from 0, and the operation's deadline) until it
    /// succeeds, fails otherwise than by a broken connection, or the deadline passes. A broken
    /// connection is tried again, at most `retries` times, each after `retry_backoff`, within
    /// the deadline.
    async fn retrying<T, F>(&self, mut attempt: impl FnMut(u32, Instant) -> F) -> Result<T>
    where
        F: Future<Output = std::result::Result<T, Failure>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut tries = 0;
        loop {
            match timeout_at(deadline, attempt(tries, deadline)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(Failure::Io(e)))
                    if tries < self.retries && Instant::now() + self.retry_backoff < deadline =>
                {
                    tracing::debug!(node = %self.node, error = %e, "retrying on a fresh connection");
                    tokio::time::sleep(self.retry_backoff).await;
                    tries += 1;
                }
                Ok(Err(failure)) => return Err(self.failed(failure)),
                Err(_) => return Err(self.timed_out()),
            }
        }
    }

    /// What a failure on a connection means for the caller.
    fn failed(&self, failure: Failure) -> Error {
        match failure {
            Failure::Io(e) => {
                let mut detail = e.to_string();
                if !self.security.is_tls()
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                    )
                {
                    detail.push_str(
                        " (a server that expects TLS, memcached -Z, closes plain connections \
                         like this: see tls)",
                    );
                }
                Error::Io {
                    node: self.node.clone(),
                    detail,
                }
            }
            // Set-up failures (TLS, authentication) are the node's, and retrying cannot help.
            Failure::Setup(detail) => Error::Io {
                node: self.node.clone(),
                detail,
            },
            Failure::Protocol(detail) => self.protocol(detail),
            Failure::TimedOut => self.timed_out(),
            // A bad value, not a bad node: the node stays up, the connection is dropped.
            Failure::Oversized(len) => Error::Corrupt(format!(
                "node {} holds a value of {len} bytes, more than the {} accepted",
                self.node, self.max_value
            )),
            Failure::Refused(message) => Error::Server {
                node: self.node.clone(),
                message,
            },
        }
    }

    fn timed_out(&self) -> Error {
        Error::Timeout {
            node: self.node.clone(),
            after: self.timeout,
        }
    }

    /// A connection of `idle` that the server left quiet; the others are dropped.
    fn take_idle(&self, idle: &Mutex<Vec<Connection>>) -> Option<Connection> {
        loop {
            let mut conn = idle.lock().pop()?;
            if conn.is_quiet() {
                return Some(conn);
            }
            tracing::debug!(node = %self.node, "dropping a pooled connection the server closed or wrote to");
        }
    }

    fn protocol(&self, detail: impl Into<String>) -> Error {
        Error::Protocol {
            node: self.node.clone(),
            detail: detail.into(),
        }
    }

    fn unexpected(&self, reply: impl std::fmt::Debug) -> Error {
        self.protocol(format!("unexpected reply {reply:?}"))
    }
}
