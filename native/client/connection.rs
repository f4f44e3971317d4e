//! One connection to a memcached server: it writes requests and buffers what the server sends
//! until [`reply::parse`] finds whole replies in it.
//!
//! A connection serves one caller at a time, which may send several requests at once (a
//! pipeline) and reads their replies in order. Any failure (I/O, a malformed reply, a server
//! error, bytes nobody asked for) leaves it in an unknown state, so the caller drops it.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::reply::{self, Expect, Parsed, Reply, ReplyError};

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

/// A connection to one server.
pub struct Connection {
    stream: TcpStream,
    /// Bytes received and not yet taken by a reply.
    buffer: Vec<u8>,
}

impl Connection {
    /// Connects to `address` (host:port).
    pub async fn open(address: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(READ_CHUNK),
        })
    }

    /// Whether an idle connection can serve a request: the server has neither closed it nor
    /// sent anything since its last reply (which a later request would take for its own).
    pub fn is_quiet(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Sends encoded requests at once and reads their replies in order, one per `expects`
    /// entry: one round trip however many requests. Values larger than `max_value` are refused
    /// before anything is allocated for them. Bytes left after the last reply fail the exchange:
    /// the server said more than it was asked, so no reply can be trusted to be ours.
    pub async fn exchange(
        &mut self,
        requests: &[u8],
        expects: &[Expect<'_>],
        max_value: usize,
    ) -> Result<Vec<Reply>, Failure> {
        self.stream.write_all(requests).await?;
        let mut replies = Vec::with_capacity(expects.len());
        for expect in expects {
            replies.push(self.read_reply(*expect, max_value).await?);
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

    async fn read_reply(&mut self, expect: Expect<'_>, max_value: usize) -> Result<Reply, Failure> {
        loop {
            match reply::parse(&self.buffer, expect, max_value)? {
                Parsed::Complete { reply, len } => {
                    self.buffer.drain(..len);
                    return match reply {
                        Reply::Error => Err(Failure::Refused("command not supported".into())),
                        Reply::ClientError(message) | Reply::ServerError(message) => {
                            Err(Failure::Refused(message))
                        }
                        reply => Ok(reply),
                    };
                }
                Parsed::Incomplete { missing } => {
                    self.buffer.reserve(missing.max(READ_CHUNK));
                    if self.stream.read_buf(&mut self.buffer).await? == 0 {
                        return Err(Failure::Io(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                }
            }
        }
    }
}
