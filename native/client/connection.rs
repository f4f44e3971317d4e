//! One connection to a memcached server speaking the text protocol.
//!
//! A connection serves one caller at a time, which may send several requests at once (a
//! pipeline) and reads their replies in order. Any error (I/O, an unexpected line, a
//! server error) leaves it in an unknown state, so the caller drops it.

use std::collections::HashSet;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest status or `VALUE` line accepted from a server.
const MAX_LINE: u64 = 2048;

/// One item returned by a retrieval command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The key it was stored under.
    pub key: String,
    /// The stored bytes.
    pub data: Vec<u8>,
    /// The CAS unique, for `gets`.
    pub cas: Option<u64>,
}

/// A server's answer to one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Items of a `get`/`gets`, in the order the server sent them.
    Items(Vec<Item>),
    /// `STORED`
    Stored,
    /// `NOT_STORED`
    NotStored,
    /// `EXISTS`
    Exists,
    /// `NOT_FOUND`
    NotFound,
    /// `TOUCHED`
    Touched,
    /// `DELETED`
    Deleted,
    /// The new value after `incr`.
    Number(u64),
    /// The server's `VERSION` line.
    Version(String),
}

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

/// What kind of answer a request expects.
#[derive(Clone, Copy, Debug)]
pub enum Expect<'a> {
    /// Items for these keys, then `END`.
    Items(&'a [&'a str]),
    /// A single status line.
    Status,
    /// A number or `NOT_FOUND`.
    Number,
    /// `VERSION <text>`.
    Version,
}

/// A connection to one server.
pub struct Connection {
    stream: BufReader<TcpStream>,
    line: Vec<u8>,
}

impl Connection {
    /// Connects to `address` (host:port).
    pub async fn open(address: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream: BufReader::with_capacity(16 * 1024, stream),
            line: Vec::with_capacity(128),
        })
    }

    /// Sends encoded requests at once and reads their replies in order, one per `expects`
    /// entry: one round trip however many requests. Values larger than `max_value` are refused
    /// before anything is allocated for them.
    pub async fn exchange(
        &mut self,
        requests: &[u8],
        expects: &[Expect<'_>],
        max_value: usize,
    ) -> Result<Vec<Reply>, Failure> {
        self.stream.get_mut().write_all(requests).await?;
        let mut replies = Vec::with_capacity(expects.len());
        for expect in expects {
            replies.push(self.read_reply(*expect, max_value).await?);
        }
        Ok(replies)
    }

    async fn read_reply(&mut self, expect: Expect<'_>, max_value: usize) -> Result<Reply, Failure> {
        match expect {
            Expect::Items(keys) => self.read_items(keys, max_value).await,
            Expect::Status => self.read_status().await,
            Expect::Number => self.read_number().await,
            Expect::Version => self.read_version().await,
        }
    }

    async fn read_line(&mut self) -> Result<&str, Failure> {
        self.line.clear();
        let n = (&mut self.stream)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.line)
            .await?;
        if n == 0 {
            return Err(Failure::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let line = self
            .line
            .strip_suffix(b"\r\n")
            .ok_or_else(|| Failure::Protocol("line too long or not terminated by CRLF".into()))?;
        let line = std::str::from_utf8(line)
            .map_err(|_| Failure::Protocol("line is not valid UTF-8".into()))?;
        if let Some(message) = line
            .strip_prefix("SERVER_ERROR ")
            .or_else(|| line.strip_prefix("CLIENT_ERROR "))
        {
            return Err(Failure::Refused(message.to_owned()));
        }
        if line == "ERROR" {
            return Err(Failure::Refused("command not supported".into()));
        }
        Ok(line)
    }

    async fn read_status(&mut self) -> Result<Reply, Failure> {
        let line = self.read_line().await?;
        Ok(match line {
            "STORED" => Reply::Stored,
            "NOT_STORED" => Reply::NotStored,
            "EXISTS" => Reply::Exists,
            "NOT_FOUND" => Reply::NotFound,
            "TOUCHED" => Reply::Touched,
            "DELETED" => Reply::Deleted,
            other => return Err(Failure::Protocol(format!("unexpected reply `{other}`"))),
        })
    }

    async fn read_number(&mut self) -> Result<Reply, Failure> {
        let line = self.read_line().await?;
        if line == "NOT_FOUND" {
            return Ok(Reply::NotFound);
        }
        line.trim_end()
            .parse()
            .map(Reply::Number)
            .map_err(|_| Failure::Protocol(format!("unexpected reply `{line}`")))
    }

    async fn read_version(&mut self) -> Result<Reply, Failure> {
        let line = self.read_line().await?;
        line.strip_prefix("VERSION ")
            .map(|v| Reply::Version(v.to_owned()))
            .ok_or_else(|| Failure::Protocol(format!("unexpected reply `{line}`")))
    }

    async fn read_items(&mut self, keys: &[&str], max_value: usize) -> Result<Reply, Failure> {
        let mut wanted: HashSet<&str> = keys.iter().copied().collect();
        let mut items = Vec::new();
        loop {
            let line = self.read_line().await?;
            if line == "END" {
                return Ok(Reply::Items(items));
            }
            let (key, len, cas) = parse_value_line(line)?;
            if !wanted.remove(key.as_str()) {
                return Err(Failure::Protocol(format!("unrequested key `{key}`")));
            }
            if len > max_value {
                return Err(Failure::Oversized(len));
            }
            let mut data = vec![0u8; len + 2];
            self.stream.read_exact(&mut data).await?;
            if !data.ends_with(b"\r\n") {
                return Err(Failure::Protocol("value not terminated by CRLF".into()));
            }
            data.truncate(len);
            items.push(Item { key, data, cas });
        }
    }
}

/// Parses `VALUE <key> <flags> <bytes> [<cas>]`.
fn parse_value_line(line: &str) -> Result<(String, usize, Option<u64>), Failure> {
    let bad = || Failure::Protocol(format!("unexpected reply `{line}`"));
    let mut parts = line.split(' ');
    if parts.next() != Some("VALUE") {
        return Err(bad());
    }
    let key = parts.next().ok_or_else(bad)?.to_owned();
    let _flags: u32 = parts.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
    let len: usize = parts.next().and_then(|l| l.parse().ok()).ok_or_else(bad)?;
    let cas = match parts.next() {
        Some(c) => Some(c.parse().map_err(|_| bad())?),
        None => None,
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok((key, len, cas))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_lines() {
        assert_eq!(
            parse_value_line("VALUE k 0 5").unwrap(),
            ("k".into(), 5, None)
        );
        assert_eq!(
            parse_value_line("VALUE k 3 5 99").unwrap(),
            ("k".into(), 5, Some(99))
        );
        for bad in [
            "VALUE",
            "VALUE k",
            "VALUE k x 5",
            "VALUE k 0 -1",
            "VALUE k 0 5 1 2",
            "VALU k 0 1",
        ] {
            assert!(parse_value_line(bad).is_err(), "{bad}");
        }
    }
}
