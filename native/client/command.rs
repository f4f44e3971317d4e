//! The commands the client sends: each encoded in one place, with the reply it expects and what
//! that reply means. Keys are validated before anything is encoded, so a malformed key can never
//! inject a second command.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::reply::{Expect, Item, Reply};
use crate::error::{Error, Result};

/// Longest key memcached accepts.
pub const MAX_KEY_LEN: usize = 250;
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

/// One command for [`NodeClient::pipeline`](super::NodeClient::pipeline).
#[derive(Debug, Clone, Copy)]
pub enum Command<'a> {
    /// Reads items; keys that are missing are absent from the answer.
    Get(&'a [&'a str]),
    /// Reads items with their CAS uniques.
    Gets(&'a [&'a str]),
    /// Stores unconditionally.
    Set {
        /// The key.
        key: &'a str,
        /// The value.
        value: &'a [u8],
        /// Memcached's expiry field.
        exptime: u64,
    },
    /// Stores only if the key is absent.
    Add {
        /// The key.
        key: &'a str,
        /// The value.
        value: &'a [u8],
        /// Memcached's expiry field.
        exptime: u64,
    },
    /// Adds bytes at the end of an existing item (its expiry stays); not stored when the item
    /// is absent.
    Append {
        /// The key.
        key: &'a str,
        /// The bytes to add.
        value: &'a [u8],
    },
    /// Stores only if the item is unchanged since `gets` returned `cas`.
    Cas {
        /// The key.
        key: &'a str,
        /// The value.
        value: &'a [u8],
        /// Memcached's expiry field.
        exptime: u64,
        /// The CAS unique the item must still have.
        cas: u64,
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
    /// Increments a decimal counter.
    Incr {
        /// The key.
        key: &'a str,
        /// What to add.
        delta: u64,
    },
    /// Asks the server's version.
    Version,
}

/// The meaning of the reply to one [`Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The items a `Get` or `Gets` found, in the order the server sent them.
    Items(Vec<Item>),
    /// A `Set`, `Add` or `Cas` stored its value.
    Stored,
    /// An `Add` found the key present, or an `Append` found it absent.
    NotStored,
    /// A `Cas` found the item changed since it was read.
    Exists,
    /// Whether the item of a `Touch` or `Delete` existed; `false` also when a `Cas` or `Incr`
    /// found no item.
    Found(bool),
    /// The counter after an `Incr`.
    Number(u64),
    /// The server's version string.
    Version(String),
}

impl<'a> Command<'a> {
    /// Appends the command's bytes to `out`; fails, appending nothing, on an invalid key.
    pub(super) fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        match *self {
            Command::Get(keys) => retrieval(out, "get", keys)?,
            Command::Gets(keys) => retrieval(out, "gets", keys)?,
            Command::Set {
                key,
                value,
                exptime,
            } => storage(out, "set", key, value, exptime, None)?,
            Command::Add {
                key,
                value,
                exptime,
            } => storage(out, "add", key, value, exptime, None)?,
            // Memcached ignores the expiry of an append.
            Command::Append { key, value } => storage(out, "append", key, value, 0, None)?,
            Command::Cas {
                key,
                value,
                exptime,
                cas,
            } => storage(out, "cas", key, value, exptime, Some(cas))?,
            Command::Touch { key, exptime } => {
                validate_key(key)?;
                write(out, format_args!("touch {key} {exptime}\r\n"));
            }
            Command::Delete(key) => {
                validate_key(key)?;
                write(out, format_args!("delete {key}\r\n"));
            }
            Command::Incr { key, delta } => {
                validate_key(key)?;
                write(out, format_args!("incr {key} {delta}\r\n"));
            }
            Command::Version => out.extend_from_slice(b"version\r\n"),
        }
        Ok(())
    }

    /// How the reply to this command is read.
    pub(super) fn expect(&self) -> Expect<'a> {
        match *self {
            Command::Get(keys) => Expect::Items { keys, cas: false },
            Command::Gets(keys) => Expect::Items { keys, cas: true },
            _ => Expect::Line,
        }
    }

    /// The size of the value the command stores, 0 for the others.
    pub(super) fn value_len(&self) -> usize {
        match *self {
            Command::Set { value, .. }
            | Command::Add { value, .. }
            | Command::Append { value, .. }
            | Command::Cas { value, .. } => value.len(),
            _ => 0,
        }
    }

    /// What `reply` means as an answer to this command; the reply back when it answers another
    /// kind of command.
    pub(super) fn answer(&self, reply: Reply) -> std::result::Result<Answer, Reply> {
        use Command as C;
        Ok(match (self, reply) {
            (C::Get(_) | C::Gets(_), Reply::Items(items)) => Answer::Items(items),
            (C::Set { .. } | C::Add { .. } | C::Append { .. } | C::Cas { .. }, Reply::Stored) => {
                Answer::Stored
            }
            (C::Add { .. } | C::Append { .. }, Reply::NotStored) => Answer::NotStored,
            (C::Cas { .. }, Reply::Exists) => Answer::Exists,
            (C::Touch { .. }, Reply::Touched) | (C::Delete(_), Reply::Deleted) => {
                Answer::Found(true)
            }
            (C::Cas { .. } | C::Touch { .. } | C::Delete(_) | C::Incr { .. }, Reply::NotFound) => {
                Answer::Found(false)
            }
            (C::Incr { .. }, Reply::Number(n)) => Answer::Number(n),
            (C::Version, Reply::Version(v)) => Answer::Version(v),
            (_, other) => return Err(other),
        })
    }
}

/// Appends a retrieval command for `keys`.
fn retrieval(out: &mut Vec<u8>, verb: &str, keys: &[&str]) -> Result<()> {
    if keys.is_empty() {
        return Err(Error::InvalidKey(format!("`{verb}` of no key")));
    }
    for key in keys {
        validate_key(key)?;
    }
    out.extend_from_slice(verb.as_bytes());
    for key in keys {
        out.push(b' ');
        out.extend_from_slice(key.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends a storage command with its data block.
fn storage(
    out: &mut Vec<u8>,
    verb: &str,
    key: &str,
    value: &[u8],
    exptime: u64,
    cas: Option<u64>,
) -> Result<()> {
    validate_key(key)?;
    write(
        out,
        format_args!("{verb} {key} 0 {exptime} {}", value.len()),
    );
    if let Some(cas) = cas {
        write(out, format_args!(" {cas}"));
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

fn write(out: &mut Vec<u8>, text: std::fmt::Arguments<'_>) {
    out.write_fmt(text).expect("writing to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(command: Command<'_>) -> Result<Vec<u8>> {
        let mut out = b"before|".to_vec();
        command.encode(&mut out)?;
        Ok(out.split_off(7))
    }

    #[test]
    fn every_command_is_encoded_as_memcached_reads_it() {
        let cases: [(Command<'_>, &[u8]); 9] = [
            (Command::Get(&["a", "b"]), b"get a b\r\n"),
            (Command::Gets(&["a"]), b"gets a\r\n"),
            (
                Command::Set {
                    key: "k",
                    value: b"v\r\n",
                    exptime: 60,
                },
                b"set k 0 60 3\r\nv\r\n\r\n",
            ),
            (
                Command::Add {
                    key: "k",
                    value: b"",
                    exptime: 0,
                },
                b"add k 0 0 0\r\n\r\n",
            ),
            (
                Command::Cas {
                    key: "k",
                    value: b"x",
                    exptime: 1,
                    cas: 77,
                },
                b"cas k 0 1 1 77\r\nx\r\n",
            ),
            (
                Command::Touch {
                    key: "k",
                    exptime: 9,
                },
                b"touch k 9\r\n",
            ),
            (Command::Delete("k"), b"delete k\r\n"),
            (Command::Incr { key: "n", delta: 2 }, b"incr n 2\r\n"),
            (Command::Version, b"version\r\n"),
        ];
        for (command, bytes) in cases {
            assert_eq!(encoded(command).unwrap(), bytes, "{command:?}");
        }
    }

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
    fn a_command_with_a_bad_key_appends_nothing() {
        let mut out = b"kept".to_vec();
        for command in [
            Command::Get(&["ok", "bad key"]),
            Command::Get(&[]),
            Command::Delete("x\r\n"),
            Command::Set {
                key: "",
                value: b"v",
                exptime: 0,
            },
        ] {
            assert!(command.encode(&mut out).is_err(), "{command:?}");
        }
        assert_eq!(out, b"kept");
    }

    #[test]
    fn a_reply_for_another_kind_of_command_is_handed_back() {
        assert_eq!(
            Command::Delete("k").answer(Reply::Stored),
            Err(Reply::Stored)
        );
        assert_eq!(
            Command::Set {
                key: "k",
                value: b"",
                exptime: 0
            }
            .answer(Reply::NotStored),
            Err(Reply::NotStored)
        );
        assert_eq!(
            Command::Version.answer(Reply::Number(1)),
            Err(Reply::Number(1))
        );
        assert_eq!(
            Command::Incr { key: "n", delta: 1 }.answer(Reply::NotFound),
            Ok(Answer::Found(false))
        );
    }

    #[test]
    fn long_lifetimes_become_absolute() {
        assert_eq!(expiry(0), 0);
        assert_eq!(expiry(1800), 1800);
        assert!(expiry(MAX_RELATIVE_EXPIRY + 1) > 1_600_000_000);
    }
}
