//! The memcached reply parser: bytes in, replies out, no socket.
//!
//! Text-protocol replies do not say what they answer (a line `42` is only a reply to `incr`, a
//! `VALUE` block only to a retrieval), so the caller tells [`parse`] what it asked with an
//! [`Expect`]. [`parse`] looks at the start of a buffer and answers a whole reply with the number
//! of bytes it took, or that more bytes are needed, or that the bytes can never become a valid
//! reply. Every length is checked against its limit before more bytes are waited for or anything
//! is allocated, so a lying server can make the client hold at most one line of [`MAX_LINE`]
//! bytes or one value of `max_value` bytes per requested key.

use std::ops::Range;

/// Longest reply line accepted, `\r\n` included.
pub const MAX_LINE: usize = 2048;

/// Longest excerpt of a server's bytes quoted in an error message.
const MAX_QUOTE: usize = 64;

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

/// What a request asked for, which decides how its reply is read.
#[derive(Debug, Clone, Copy)]
pub enum Expect<'a> {
    /// One line: a status word, a number (`incr`), `VERSION <text>` or an error line.
    Line,
    /// `VALUE` blocks, each for a different key among `keys`, then `END`; with `cas`, every
    /// block carries a CAS unique (`gets`).
    Items {
        /// The keys the request named.
        keys: &'a [&'a str],
        /// Whether CAS uniques were asked for.
        cas: bool,
    },
}

/// A server's whole answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The text of the server's `VERSION` line.
    Version(String),
    /// `ERROR`: the server does not know the command.
    Error,
    /// `CLIENT_ERROR <message>`: the server found the request malformed.
    ClientError(String),
    /// `SERVER_ERROR <message>`: the server could not do what was asked.
    ServerError(String),
}

/// The outcome of looking at a buffer that holds no error.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole reply, which took the first `len` bytes of the buffer.
    Complete {
        /// The reply.
        reply: Reply,
        /// How many bytes of the buffer it took.
        len: usize,
    },
    /// The buffer holds the start of a reply; at least `missing` more bytes are needed.
    Incomplete {
        /// A lower bound on the bytes still to come.
        missing: usize,
    },
}

/// Why the bytes can never become a valid reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The protocol does not allow these bytes here.
    Malformed(String),
    /// A `VALUE` block announces more bytes than accepted; nothing was read or allocated for it.
    Oversized(usize),
}

/// Why parsing stopped before a whole reply.
enum Stop {
    Incomplete(usize),
    Bad(ReplyError),
}

impl From<ReplyError> for Stop {
    fn from(e: ReplyError) -> Self {
        Stop::Bad(e)
    }
}

/// Reads the reply at the start of `buf` to a request that expects `expect`, accepting values of
/// at most `max_value` bytes. Bytes after the reply are left alone: they belong to the next one.
pub fn parse(buf: &[u8], expect: Expect<'_>, max_value: usize) -> Result<Parsed, ReplyError> {
    let outcome = match expect {
        Expect::Line => line(buf, 0).and_then(|(text, len)| Ok((single(text)?, len))),
        Expect::Items { keys, cas } => items(buf, keys, cas, max_value),
    };
    match outcome {
        Ok((reply, len)) => Ok(Parsed::Complete { reply, len }),
        Err(Stop::Incomplete(missing)) => Ok(Parsed::Incomplete { missing }),
        Err(Stop::Bad(e)) => Err(e),
    }
}

/// The line starting at `at`, without its `\r\n`, and where the next one starts.
fn line(buf: &[u8], at: usize) -> Result<(&[u8], usize), Stop> {
    let rest = &buf[at..];
    let window = &rest[..rest.len().min(MAX_LINE)];
    match window.iter().position(|&b| b == b'\n') {
        Some(end) => match window[..end].strip_suffix(b"\r") {
            Some(text) => Ok((text, at + end + 1)),
            None => Err(malformed("a line ends in a bare \\n", &window[..end]).into()),
        },
        None if rest.len() >= MAX_LINE => {
            Err(malformed(&format!("a line is longer than {MAX_LINE} bytes"), window).into())
        }
        None => Err(Stop::Incomplete(1)),
    }
}

/// A reply of one line.
fn single(text: &[u8]) -> Result<Reply, ReplyError> {
    if let Some(reply) = error_line(text)? {
        return Ok(reply);
    }
    Ok(match text {
        b"STORED" => Reply::Stored,
        b"NOT_STORED" => Reply::NotStored,
        b"EXISTS" => Reply::Exists,
        b"NOT_FOUND" => Reply::NotFound,
        b"TOUCHED" => Reply::Touched,
        b"DELETED" => Reply::Deleted,
        _ => {
            if let Some(version) = text.strip_prefix(b"VERSION ") {
                Reply::Version(utf8(version)?.to_owned())
            } else if let Some(n) = decimal(text.trim_ascii_end()) {
                // memcached pads an `incr` result that got shorter with spaces.
                Reply::Number(n)
            } else {
                return Err(malformed("unexpected reply", text));
            }
        }
    })
}

/// `ERROR`, `CLIENT_ERROR …` or `SERVER_ERROR …`, which may answer any request.
fn error_line(text: &[u8]) -> Result<Option<Reply>, ReplyError> {
    let message = |rest: &[u8]| match rest {
        [] => Ok(String::new()),
        [b' ', message @ ..] => utf8(message).map(str::to_owned),
        _ => Err(malformed("unexpected reply", text)),
    };
    Ok(if text == b"ERROR" {
        Some(Reply::Error)
    } else if let Some(rest) = text.strip_prefix(b"CLIENT_ERROR") {
        Some(Reply::ClientError(message(rest)?))
    } else if let Some(rest) = text.strip_prefix(b"SERVER_ERROR") {
        Some(Reply::ServerError(message(rest)?))
    } else {
        None
    })
}

/// Where one `VALUE` block's parts lie in the buffer.
struct Block {
    key: usize,
    data: Range<usize>,
    cas: Option<u64>,
}

/// `VALUE` blocks then `END`. The data is copied out only once the whole reply is there, so a
/// reply that arrives in pieces is never copied twice.
fn items(buf: &[u8], keys: &[&str], cas: bool, max_value: usize) -> Result<(Reply, usize), Stop> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut at = 0;
    loop {
        let (text, next) = line(buf, at)?;
        if text == b"END" {
            let items = blocks
                .into_iter()
                .map(|b| Item {
                    key: keys[b.key].to_owned(),
                    data: buf[b.data].to_vec(),
                    cas: b.cas,
                })
                .collect();
            return Ok((Reply::Items(items), next));
        }
        if let Some(reply) = error_line(text)? {
            return Ok((reply, next));
        }
        let (key, len, unique) = value_line(text)?;
        let index = keys
            .iter()
            .position(|k| k.as_bytes() == key)
            .ok_or_else(|| malformed("a VALUE block for a key not asked for", key))?;
        if blocks.iter().any(|b| b.key == index) {
            return Err(malformed("a second VALUE block for a key", key).into());
        }
        if cas && unique.is_none() {
            return Err(malformed("a gets reply without CAS unique", text).into());
        }
        let end = match next.checked_add(len).and_then(|n| n.checked_add(2)) {
            Some(end) if len <= max_value => end,
            _ => return Err(ReplyError::Oversized(len).into()),
        };
        if buf.len() < end {
            return Err(Stop::Incomplete(end - buf.len()));
        }
        if &buf[next + len..end] != b"\r\n" {
            return Err(
                malformed("a value is not followed by \\r\\n", &buf[next + len..end]).into(),
            );
        }
        blocks.push(Block {
            key: index,
            data: next..next + len,
            cas: unique,
        });
        at = end;
    }
}

/// `VALUE <key> <flags> <bytes> [<cas unique>]`, as key, length and CAS unique.
fn value_line(text: &[u8]) -> Result<(&[u8], usize, Option<u64>), ReplyError> {
    let bad = || malformed("unexpected reply", text);
    let mut parts = text.split(|&b| b == b' ');
    if parts.next() != Some(b"VALUE") {
        return Err(bad());
    }
    let key = parts.next().filter(|k| !k.is_empty()).ok_or_else(bad)?;
    let _flags: u32 = parts.next().and_then(decimal).ok_or_else(bad)?;
    let len: usize = parts.next().and_then(decimal).ok_or_else(bad)?;
    let cas = match parts.next() {
        Some(unique) => Some(decimal(unique).ok_or_else(bad)?),
        None => None,
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok((key, len, cas))
}

/// An unsigned decimal of ASCII digits only (no sign, no space), if it fits `T`.
fn decimal<T: std::str::FromStr>(text: &[u8]) -> Option<T> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn utf8(text: &[u8]) -> Result<&str, ReplyError> {
    std::str::from_utf8(text).map_err(|_| malformed("text that is not UTF-8", text))
}

/// A [`ReplyError::Malformed`] quoting the start of the offending bytes, escaped.
fn malformed(what: &str, bytes: &[u8]) -> ReplyError {
    let quoted = bytes[..bytes.len().min(MAX_QUOTE)].escape_ascii();
    let more = if bytes.len() > MAX_QUOTE { "…" } else { "" };
    ReplyError::Malformed(format!("{what}: `{quoted}{more}`"))
}

#[cfg(test)]
mod tests;
