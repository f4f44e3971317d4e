//! One connection to a memcached server: it writes requests and buffers what the server sends
//! until [`reply::parse`] finds whole replies in it.
//!
//! A connection serves one caller at a time, which may send several requests at once (a
//! pipeline) and reads their replies in order. Any failure (I/O, a malformed reply, a server
//! error, bytes nobody asked for) leaves it in an unknown state, so the caller drops it.
//!
//! Opening one does what [`Security`] says before the first command: the TLS handshake, then
//! memcached's ASCII authentication.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::client::TlsStream;

use super::reply::{self, Expect, Parsed, Reply, ReplyError};
use super::security::Security;

/// Bytes asked of the socket at least per read.
const READ_CHUNK: usize = 16 * 1024;
/// A buffer grown beyond this for a large value is given back once the value is taken.
const KEPT_CAPACITY: usize = 64 * 1024;

/// How a request failed on a connection.
#[derive(Debug)]
pub enum Failure {
    /// The connection broke.
    Io(std::io::Error),
    /// The server sent something the protocol does not allow here.
    Protocol(String),
    /// `SERVER_ERROR`, `CLIENT_ERROR` or `ERROR`: the server is fine, the request was refused.
    Refused(String),
    /// A stored value is larger than the caller accepts; it was not read.
    Oversized(usize),
    /// The connection could not be set up (TLS, authentication): retrying at once cannot help.
    Setup(String),
    /// No reply before the deadline of a batch sent by a server's writer (which may pass just
    /// before the caller's own), or of a blocking connection's exchange.
    TimedOut,
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

impl From<ReplyError> for Failure {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::Malformed(detail) => Failure::Protocol(detail),
            ReplyError::Oversized(len) => Failure::Oversized(len),
        }
    }
}

/// The byte stream under a connection.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// A plain socket in blocking mode, read and written by the thread that polls the
    /// connection's future, for host threads that wait for it anyway
    /// ([`crate::runtime::host_waits`]): a reply then wakes that thread directly, not a runtime
    /// thread that wakes it. Each read and write waits until `deadline` at most, the deadline
    /// of the exchange under way ([`Connection::exchange`]).
    Blocking {
        tcp: std::net::TcpStream,
        deadline: std::time::Instant,
    },
}

impl Stream {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes).await,
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Stream::Blocking { tcp, deadline } => write_blocking(tcp, *deadline, bytes),
        }
    }

    async fn read_buf(&mut self, buffer: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read_buf(buffer).await,
            Stream::Tls(s) => s.read_buf(buffer).await,
            Stream::Blocking { tcp, deadline } => read_blocking(tcp, *deadline, buffer),
        }
    }

    /// Reads without waiting: `Pending` when nothing is there to read.
    fn poll_now(&mut self, buffer: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let mut cx = Context::from_waker(Waker::noop());
        match self {
            Stream::Plain(s) => Pin::new(s).poll_read(&mut cx, buffer),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(&mut cx, buffer),
            Stream::Blocking { tcp, .. } => {
                tcp.set_nonblocking(true)?;
                let peeked = tcp.peek(buffer.initialize_unfilled());
                tcp.set_nonblocking(false)?;
                match peeked {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Poll::Pending,
                    Err(e) => Poll::Ready(Err(e)),
                    Ok(n) => {
                        buffer.advance(n);
                        Poll::Ready(Ok(()))
                    }
                }
            }
        }
    }
}

/// What is left until `deadline`, or a [`std::io::ErrorKind::TimedOut`] error when nothing is.
fn left(deadline: std::time::Instant) -> std::io::Result<std::time::Duration> {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    if left.is_zero() {
        Err(std::io::ErrorKind::TimedOut.into())
    } else {
        Ok(left)
    }
}

/// A socket timeout ends a blocking call as if the socket were non-blocking: that is the
/// deadline passing.
fn timed_out(e: std::io::Error) -> std::io::Error {
    match e.kind() {
        std::io::ErrorKind::WouldBlock => std::io::ErrorKind::TimedOut.into(),
        _ => e,
    }
}

/// Connects to the first address `address` resolves to that accepts, before `deadline`.
fn connect_blocking(
    address: &str,
    deadline: std::time::Instant,
) -> std::io::Result<std::net::TcpStream> {
    let mut failure = std::io::Error::from(std::io::ErrorKind::NotFound);
    for address in std::net::ToSocketAddrs::to_socket_addrs(address)? {
        match std::net::TcpStream::connect_timeout(&address, left(deadline)?) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => failure = e,
        }
    }
    Err(failure)
}

/// Writes `bytes` whole, waiting until `deadline` at most: then it fails as
/// [`std::io::ErrorKind::TimedOut`].
fn write_blocking(
    tcp: &mut std::net::TcpStream,
    deadline: std::time::Instant,
    bytes: &[u8],
) -> std::io::Result<()> {
    tcp.set_write_timeout(Some(left(deadline)?))?;
    std::io::Write::write_all(tcp, bytes).map_err(timed_out)
}

/// Reads what the server sent into `buffer`'s spare room (at least a byte of it), waiting until
/// `deadline` at most: then it fails as [`std::io::ErrorKind::TimedOut`]. A signal that
/// interrupts the wait does not end it.
fn read_blocking(
    tcp: &mut std::net::TcpStream,
    deadline: std::time::Instant,
    buffer: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let filled = buffer.len();
    let room = (buffer.capacity() - filled).max(1);
    buffer.resize(filled + room, 0);
    let read = loop {
        let read = left(deadline)
            .and_then(|left| tcp.set_read_timeout(Some(left)))
            .and_then(|()| std::io::Read::read(tcp, &mut buffer[filled..]));
        match read {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            read => break read,
        }
    };
    buffer.truncate(filled + *read.as_ref().unwrap_or(&0));
    read.map_err(timed_out)
}

/// A connection to one server.
pub struct Connection {
    stream: Stream,
    /// Bytes received and not yet taken by a reply.
    buffer: Vec<u8>,
}

impl Connection {
    /// Connects to `address` (host:port) of the server at `host`, and sets the connection up as
    /// `security` says (TLS handshake, authentication) before `deadline`.
    pub async fn open(
        address: &str,
        host: &str,
        security: &Security,
        deadline: Instant,
    ) -> Result<Self, Failure> {
        let tcp = TcpStream::connect(address).await?;
        tcp.set_nodelay(true)?;
        let stream = match security.tls(host) {
            None => Stream::Plain(tcp),
            Some((_, None)) => {
                return Err(Failure::Setup(format!(
                    "`{host}` is neither a DNS name nor an IP address to check the server's \
                     certificate against; set tlsServerName"
                )));
            }
            Some((connector, Some(name))) => {
                match timeout_at(deadline, connector.connect(name, tcp)).await {
                    Ok(Ok(tls)) => Stream::Tls(Box::new(tls)),
                    Ok(Err(e)) => return Err(Failure::Setup(tls_failure(&e))),
                    Err(_) => {
                        return Err(Failure::Setup(
                            "no TLS handshake before the deadline: does the server speak TLS \
                             (memcached -Z)?"
                                .into(),
                        ));
                    }
                }
            }
        };
        let mut conn = Connection {
            stream,
            buffer: Vec::with_capacity(READ_CHUNK),
        };
        if let Some(credentials) = security.credentials() {
            conn.authenticate(credentials, deadline).await?;
        }
        Ok(conn)
    }

    /// [`Connection::open`] for a host thread that waits ([`Stream::Blocking`]): a plain
    /// connection (TLS takes the runtime's), authenticated when `security` says so. The calling
    /// thread connects, before `deadline` (a host name is resolved first, by the system, which
    /// no deadline bounds).
    pub async fn open_blocking(
        address: &str,
        security: &Security,
        deadline: Instant,
    ) -> Result<Self, Failure> {
        let deadline = deadline.into_std();
        let tcp = connect_blocking(address, deadline).map_err(io_failure)?;
        tcp.set_nodelay(true)?;
        let mut conn = Connection {
            stream: Stream::Blocking { tcp, deadline },
            buffer: Vec::with_capacity(READ_CHUNK),
        };
        if let Some(credentials) = security.credentials() {
            conn.authenticate(credentials, deadline.into()).await?;
        }
        Ok(conn)
    }

    /// memcached's ASCII authentication: a `set` of any key whose value is `<user> <password>`,
    /// answered `STORED`.
    async fn authenticate(&mut self, credentials: &[u8], deadline: Instant) -> Result<(), Failure> {
        let mut request = format!("set msm_auth 0 0 {}\r\n", credentials.len()).into_bytes();
        request.extend_from_slice(credentials);
        request.extend_from_slice(b"\r\n");
        match self
            .exchange(&request, &[Expect::Line], READ_CHUNK, deadline)
            .await
        {
            Ok(replies) if replies == [Reply::Stored] => Ok(()),
            Ok(replies) => Err(Failure::Setup(format!(
                "unexpected answer to authentication: {replies:?}"
            ))),
            Err(Failure::Refused(message)) | Err(Failure::Setup(message)) => Err(Failure::Setup(
                format!("authentication refused ({message}): check memcachedCredentials"),
            )),
            Err(other) => Err(other),
        }
    }

    /// Whether an idle connection can serve a request: the server has neither closed it nor
    /// sent anything since its last reply (which a later request would take for its own).
    pub fn is_quiet(&mut self) -> bool {
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        self.stream.poll_now(&mut probe).is_pending()
    }

    /// Waits until the server closes the connection (or breaks it, or sends bytes nobody asked
    /// for, which is as bad) and says which.
    pub async fn closed(&mut self) -> String {
        match self.stream.read_buf(&mut self.buffer).await {
            Ok(0) => "the server closed the connection".into(),
            Ok(n) => format!("the server sent {n} bytes nobody asked for"),
            Err(e) => format!("connection broken: {e}"),
        }
    }

    /// Sends encoded requests at once and reads their replies in order, one per `expects`
    /// entry: one round trip however many requests, over by `deadline` (the caller bounds the
    /// wait of a connection on the runtime; a blocking one bounds its own reads and writes).
    /// Values larger than `max_value` are refused before anything is allocated for them. Bytes
    /// left after the last reply fail the exchange: the server said more than it was asked, so
    /// no reply can be trusted to be ours.
    pub async fn exchange(
        &mut self,
        requests: &[u8],
        expects: &[Expect<'_>],
        max_value: usize,
        deadline: Instant,
    ) -> Result<Vec<Reply>, Failure> {
        self.bound(deadline);
        self.stream.write_all(requests).await.map_err(io_failure)?;
        let mut replies = Vec::with_capacity(expects.len());
        let mut refused = None;
        for expect in expects {
            match self.read_reply(*expect, max_value).await {
                Ok(reply) => replies.push(reply),
                // A value refused for its size, or for want of memory, leaves the connection in
                // step: the later requests' replies are read too, so that when the exchange
                // fails every request of it has been carried out (a caller can take back what
                // went through).
                Err(Failure::Refused(message)) if is_storage_refusal(&message) => {
                    refused.get_or_insert(message);
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(message) = refused {
            return Err(Failure::Refused(message));
        }
        if !self.buffer.is_empty() {
            return Err(Failure::Protocol(format!(
                "{} bytes after the last reply",
                self.buffer.len()
            )));
        }
        if self.buffer.capacity() > KEPT_CAPACITY {
            self.buffer = Vec::with_capacity(READ_CHUNK);
        }
        Ok(replies)
    }

    /// Sends the requests of several callers at once (`requests`, their encodings one after
    /// the other), the `i`th asking for `lines[i]` one-line replies, and reads every reply in
    /// order: one round trip for all. Each caller gets
    /// its own outcome, as [`Connection::exchange`] would have given it alone: a value refused
    /// for its size or for want of memory fails its caller only. After any other failure the
    /// connection is out of step: the callers after it get an I/O failure (their requests may
    /// or may not have run, and each can run again), and `false` says the connection must go,
    /// as it does when bytes follow the last reply (then nobody's reply can be trusted).
    pub async fn exchange_lines(
        &mut self,
        requests: &[u8],
        lines: &[usize],
    ) -> (Vec<Result<Vec<Reply>, Failure>>, bool) {
        let aborted = || {
            Failure::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the connection failed on a request sent with this one",
            ))
        };
        if let Err(e) = self.stream.write_all(requests).await {
            let mut outcomes = vec![Err(tls_refusal(e))];
            outcomes.extend((1..lines.len()).map(|_| Err(aborted())));
            return (outcomes, false);
        }
        let mut outcomes = Vec::with_capacity(lines.len());
        let mut in_step = true;
        for &count in lines {
            if !in_step {
                outcomes.push(Err(aborted()));
                continue;
            }
            let mut replies = Vec::with_capacity(count);
            let mut refused = None;
            let mut failed = None;
            for _ in 0..count {
                match self.read_reply(Expect::Line, 0).await {
                    Ok(reply) => replies.push(reply),
                    Err(Failure::Refused(message)) if is_storage_refusal(&message) => {
                        refused.get_or_insert(message);
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            outcomes.push(match (failed, refused) {
                (Some(e), _) => {
                    in_step = false;
                    Err(e)
                }
                (None, Some(message)) => Err(Failure::Refused(message)),
                (None, None) => Ok(replies),
            });
        }
        if in_step && !self.buffer.is_empty() {
            let detail = format!("{} bytes after the last reply", self.buffer.len());
            let outcomes = lines
                .iter()
                .map(|_| Err(Failure::Protocol(detail.clone())))
                .collect();
            return (outcomes, false);
        }
        if self.buffer.capacity() > KEPT_CAPACITY {
            self.buffer = Vec::with_capacity(READ_CHUNK);
        }
        (outcomes, in_step)
    }

    /// Bounds a blocking connection's reads and writes by `deadline` (see [`Stream::Blocking`]).
    fn bound(&mut self, deadline: Instant) {
        if let Stream::Blocking {
            deadline: bound, ..
        } = &mut self.stream
        {
            *bound = deadline.into_std();
        }
    }

    async fn read_reply(&mut self, expect: Expect<'_>, max_value: usize) -> Result<Reply, Failure> {
        loop {
            let parsed = reply::parse(&self.buffer, expect, max_value).map_err(|e| {
                if self.buffer.starts_with(&[0x15, 0x03]) || self.buffer.starts_with(&[0x16, 0x03])
                {
                    Failure::Setup("the server answered with TLS: connect with tls=\"true\"".into())
                } else {
                    e.into()
                }
            })?;
            match parsed {
                Parsed::Complete { reply, len } => {
                    self.buffer.drain(..len);
                    return match reply {
                        Reply::Error => Err(Failure::Refused("command not supported".into())),
                        // No request gets past it: the node is unusable, not the request.
                        Reply::ClientError(message)
                            if message == "unauthenticated"
                                || message.contains("authentication") =>
                        {
                            Err(Failure::Setup(
                                "the server requires authentication (memcached -Y): configure \
                                 memcachedCredentials"
                                    .into(),
                            ))
                        }
                        Reply::ClientError(message) | Reply::ServerError(message) => {
                            Err(Failure::Refused(message))
                        }
                        reply => Ok(reply),
                    };
                }
                Parsed::Incomplete { missing } => {
                    self.buffer.reserve(missing.max(READ_CHUNK));
                    if self
                        .stream
                        .read_buf(&mut self.buffer)
                        .await
                        .map_err(io_failure)?
                        == 0
                    {
                        return Err(Failure::Io(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                }
            }
        }
    }
}

/// Whether `message` is memcached's refusal of one value it could not store (too large, out of
/// memory), after which it goes on with the next request.
fn is_storage_refusal(message: &str) -> bool {
    message == "object too large for cache" || message == "out of memory storing object"
}

/// A failed TLS handshake, said plainly: a certificate refused, or a server that does not speak
/// TLS.
fn tls_failure(e: &std::io::Error) -> String {
    let certificate = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)));
    if certificate {
        format!("TLS handshake failed: the server's certificate was refused: {e}")
    } else {
        format!("TLS handshake failed: {e} (does the server speak TLS, memcached -Z?)")
    }
}

/// What an I/O error on a connection means: a blocking read past its deadline is a timeout, a
/// TLS refusal a set-up failure ([`tls_refusal`]), anything else a broken connection.
fn io_failure(e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::TimedOut {
        Failure::TimedOut
    } else {
        tls_refusal(e)
    }
}

/// A TLS error after the handshake (with TLS 1.3 a server refuses a client certificate, or its
/// absence, only then) is a set-up failure, said as such; other I/O errors stay what they are.
fn tls_refusal(e: std::io::Error) -> Failure {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    match tls {
        Some(rustls::Error::AlertReceived(alert)) => Failure::Setup(format!(
            "the server refused the TLS connection ({alert:?}): does it require a client \
             certificate (tlsClientCertificateFile, tlsClientKey) from another authority?"
        )),
        Some(other) => Failure::Setup(format!("TLS failed: {other}")),
        None => Failure::Io(e),
    }
}
