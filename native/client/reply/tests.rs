//! The reply parser on byte strings: every reply kind, every split point, malformed replies.

use super::*;

const MAX: usize = 1024;
const KEYS: &[&str] = &["k1", "k2", "k3"];

fn items(cas: bool) -> Expect<'static> {
    Expect::Items { keys: KEYS, cas }
}

fn item(key: &str, data: &[u8], cas: Option<u64>) -> Item {
    Item {
        key: key.into(),
        data: data.into(),
        cas,
    }
}

/// Parses `bytes` as one whole reply and checks it took every byte.
fn whole(bytes: &[u8], expect: Expect<'_>) -> Reply {
    match parse(bytes, expect, MAX) {
        Ok(Parsed::Complete { reply, len }) => {
            assert_eq!(len, bytes.len(), "{:?}", bytes.escape_ascii().to_string());
            reply
        }
        other => panic!("{:?}: {other:?}", bytes.escape_ascii().to_string()),
    }
}

fn error(bytes: &[u8], expect: Expect<'_>) -> ReplyError {
    match parse(bytes, expect, MAX) {
        Err(e) => e,
        other => panic!("{:?}: {other:?}", bytes.escape_ascii().to_string()),
    }
}

/// Every valid reply of these tests, with what it expects and what it parses to.
fn valid() -> Vec<(&'static [u8], Expect<'static>, Reply)> {
    vec![
        (b"STORED\r\n", Expect::Line, Reply::Stored),
        (b"NOT_STORED\r\n", Expect::Line, Reply::NotStored),
        (b"EXISTS\r\n", Expect::Line, Reply::Exists),
        (b"NOT_FOUND\r\n", Expect::Line, Reply::NotFound),
        (b"DELETED\r\n", Expect::Line, Reply::Deleted),
        (b"TOUCHED\r\n", Expect::Line, Reply::Touched),
        (b"42\r\n", Expect::Line, Reply::Number(42)),
        (b"7  \r\n", Expect::Line, Reply::Number(7)),
        (
            b"18446744073709551615\r\n",
            Expect::Line,
            Reply::Number(u64::MAX),
        ),
        (
            b"VERSION 1.6.18\r\n",
            Expect::Line,
            Reply::Version("1.6.18".into()),
        ),
        (b"ERROR\r\n", Expect::Line, Reply::Error),
        (
            b"CLIENT_ERROR bad data chunk\r\n",
            Expect::Line,
            Reply::ClientError("bad data chunk".into()),
        ),
        (
            b"SERVER_ERROR object too large for cache\r\n",
            Expect::Line,
            Reply::ServerError("object too large for cache".into()),
        ),
        (
            b"SERVER_ERROR\r\n",
            Expect::Line,
            Reply::ServerError("".into()),
        ),
        (b"END\r\n", items(false), Reply::Items(vec![])),
        (
            b"VALUE k1 0 3\r\none\r\nEND\r\n",
            items(false),
            Reply::Items(vec![item("k1", b"one", None)]),
        ),
        (
            b"VALUE k2 5 3\r\ntwo\r\nVALUE k1 0 0\r\n\r\nEND\r\n",
            items(false),
            Reply::Items(vec![item("k2", b"two", None), item("k1", b"", None)]),
        ),
        (
            b"VALUE k1 0 11\r\n\r\nEND\r\n\0\xff\r\n\r\nEND\r\n",
            items(false),
            Reply::Items(vec![item("k1", b"\r\nEND\r\n\0\xff\r\n", None)]),
        ),
        (
            b"VALUE k3 0 2 99\r\nhi\r\nEND\r\n",
            items(true),
            Reply::Items(vec![item("k3", b"hi", Some(99))]),
        ),
        (
            b"VALUE k1 0 1\r\nx\r\nSERVER_ERROR out of memory\r\n",
            items(false),
            Reply::ServerError("out of memory".into()),
        ),
    ]
}

#[test]
fn every_reply_kind() {
    for (bytes, expect, reply) in valid() {
        assert_eq!(whole(bytes, expect), reply);
    }
}

#[test]
fn bytes_after_a_reply_are_left_for_the_next() {
    let buf = b"STORED\r\nDELETED\r\n";
    assert_eq!(
        parse(buf, Expect::Line, MAX),
        Ok(Parsed::Complete {
            reply: Reply::Stored,
            len: 8
        })
    );
    let buf = b"VALUE k1 0 1\r\nx\r\nEND\r\nVALUE k2 0 1\r\ny\r\nEND\r\n";
    match parse(buf, items(false), MAX) {
        Ok(Parsed::Complete { len, .. }) => assert_eq!(len, 22),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_reply_split_at_any_byte_is_incomplete_and_says_how_much_is_missing_at_least() {
    for (bytes, expect, _) in valid() {
        for cut in 0..bytes.len() {
            match parse(&bytes[..cut], expect, MAX) {
                Ok(Parsed::Incomplete { missing }) => assert!(
                    (1..=bytes.len() - cut).contains(&missing),
                    "{:?} cut at {cut}: missing {missing}",
                    bytes.escape_ascii().to_string()
                ),
                other => panic!(
                    "{:?} cut at {cut}: {other:?}",
                    bytes.escape_ascii().to_string()
                ),
            }
        }
    }
}

/// Malformed replies, each with what it expects and a word of the error it gets.
fn malformed() -> Vec<(&'static [u8], Expect<'static>, &'static str)> {
    vec![
        (b"HELLO\r\n", Expect::Line, "unexpected reply"),
        (b"\r\n", Expect::Line, "unexpected reply"),
        (b"\0\xff\x80\r\n", Expect::Line, "unexpected reply"),
        (b"STORED\n", Expect::Line, "bare \\n"),
        (b"STORED \r\n", Expect::Line, "unexpected reply"),
        (b"stored\r\n", Expect::Line, "unexpected reply"),
        (b"END\r\n", Expect::Line, "unexpected reply"),
        (b"+5\r\n", Expect::Line, "unexpected reply"),
        (b"-1\r\n", Expect::Line, "unexpected reply"),
        (
            b"18446744073709551616\r\n",
            Expect::Line,
            "unexpected reply",
        ),
        (b"VERSION \xff\r\n", Expect::Line, "not UTF-8"),
        (b"ERRORS\r\n", Expect::Line, "unexpected reply"),
        (b"SERVER_ERRORx\r\n", Expect::Line, "unexpected reply"),
        (b"STORED\r\n", items(false), "unexpected reply"),
        (b"VALUE k1 0\r\n", items(false), "unexpected reply"),
        (b"VALUE k1 0 x\r\n", items(false), "unexpected reply"),
        (b"VALUE k1 0 -1\r\n", items(false), "unexpected reply"),
        (b"VALUE k1 x 1\r\n", items(false), "unexpected reply"),
        (b"VALUE k1 0 1 2 3\r\n", items(false), "unexpected reply"),
        (b"VALUE  0 1\r\n", items(false), "unexpected reply"),
        (b"VALUE k1 0 3\r\nabcXY", items(false), "not followed by"),
        (b"VALUE k1 0 3\r\nabcd\r\n", items(false), "not followed by"),
        (
            b"VALUE k4 0 1\r\nx\r\nEND\r\n",
            items(false),
            "not asked for",
        ),
        (
            b"VALUE k 0 1\r\nx\r\nEND\r\n",
            items(false),
            "not asked for",
        ),
        (
            b"VALUE k1 0 1\r\nx\r\nVALUE k1 0 1\r\ny\r\nEND\r\n",
            items(false),
            "second VALUE",
        ),
        (b"VALUE k1 0 1\r\nx\r\nEND\r\n", items(true), "without CAS"),
        (
            b"VALUE k1 0 1\r\nx\r\nSTORED\r\n",
            items(false),
            "unexpected",
        ),
    ]
}

#[test]
fn malformed_replies_are_errors_and_none_of_their_prefixes_is_a_reply() {
    for (bytes, expect, words) in malformed() {
        match error(bytes, expect) {
            ReplyError::Malformed(message) => assert!(
                message.contains(words),
                "{:?}: {message}",
                bytes.escape_ascii().to_string()
            ),
            other => panic!("{:?}: {other:?}", bytes.escape_ascii().to_string()),
        }
        for cut in 0..bytes.len() {
            assert!(
                !matches!(
                    parse(&bytes[..cut], expect, MAX),
                    Ok(Parsed::Complete { .. })
                ),
                "{:?} cut at {cut}",
                bytes.escape_ascii().to_string()
            );
        }
    }
}

#[test]
fn a_length_beyond_the_limit_is_refused_before_its_data_arrives() {
    assert_eq!(
        error(b"VALUE k1 0 1025\r\n", items(false)),
        ReplyError::Oversized(1025)
    );
    assert_eq!(
        error(b"VALUE k1 0 18446744073709551615\r\n", items(false)),
        ReplyError::Oversized(usize::MAX)
    );
    let at_limit = format!("VALUE k1 0 {MAX}\r\n");
    assert_eq!(
        parse(at_limit.as_bytes(), items(false), MAX),
        Ok(Parsed::Incomplete { missing: MAX + 2 })
    );
    assert_eq!(
        parse(at_limit.as_bytes(), items(false), usize::MAX),
        Ok(Parsed::Incomplete { missing: MAX + 2 })
    );
    assert_eq!(
        parse(
            b"VALUE k1 0 18446744073709551614\r\n",
            items(false),
            usize::MAX
        ),
        Err(ReplyError::Oversized(usize::MAX - 1)),
        "a length whose end overflows is refused even without a limit"
    );
}

#[test]
fn a_line_longer_than_the_limit_is_refused_without_waiting_for_its_end() {
    let long = vec![b'A'; MAX_LINE - 1];
    assert_eq!(
        parse(&long, Expect::Line, MAX),
        Ok(Parsed::Incomplete { missing: 1 })
    );
    let long = vec![b'A'; MAX_LINE];
    assert!(matches!(
        error(&long, Expect::Line),
        ReplyError::Malformed(m) if m.contains("longer than")
    ));
    let mut at_limit = format!("VERSION {}", "9".repeat(MAX_LINE - 10)).into_bytes();
    at_limit.extend_from_slice(b"\r\n");
    assert_eq!(at_limit.len(), MAX_LINE);
    assert!(matches!(whole(&at_limit, Expect::Line), Reply::Version(_)));
}

#[test]
fn quoted_server_bytes_are_escaped_and_short() {
    let mut garbage = b"\x1b[31m".to_vec();
    garbage.extend(std::iter::repeat_n(b'x', 500));
    garbage.extend_from_slice(b"\r\n");
    let ReplyError::Malformed(message) = error(&garbage, Expect::Line) else {
        panic!("not malformed");
    };
    assert!(message.contains("\\x1b[31m"), "{message}");
    assert!(message.len() < 200, "{message}");
}
