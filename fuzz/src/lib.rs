//! What each fuzz target feeds a parser of outside bytes and checks of its answer, shared by the
//! cargo-fuzz targets (`fuzz_targets/`) and by the corpus replay of the test suite
//! (`tests/fuzz_corpora.rs`), so a corpus replays through exactly what was fuzzed.
//!
//! A parser must never panic, hang or allocate without bound on any input; what it accepts must
//! survive a round trip through its writer. Each function returns whether the input was
//! accepted. The tagged formats take a first byte choosing the codec and whether to tag the rest
//! ([`Codec::tag_for_fuzzing`]), so the fuzzer reaches what lies past the integrity check too.

use std::sync::OnceLock;

use msm::client::reply::{self, Expect, Parsed, Reply, ReplyError};
use msm::config::{ConfigBuilder, format_node_list, parse_node_list};
use msm::envelope::{Codec, KeyRing, Stored};
use msm::membership::NodeList;
use msm::validity::Validity;
use msm::{Error, SessionId};

/// The key of the golden envelope fixtures.
const KEY: &[u8] = b"golden-fixture-key-not-a-secret";
/// A key that signed before a rotation.
const OLD_KEY: &[u8] = b"an-older-key-not-a-secret-either";
/// The context of the golden fixtures.
const CONTEXT: &str = "shop:";
/// The id (random part) of the golden fixtures.
const ID: &str = "602F7397FBE4D9932E59A9D0E52FE178";
/// What the shared node list is bound to (`membership::BOUND`).
const NODE_LIST_BOUND: &str = "nodes";
/// maxSessionSize of the codecs.
const MAX_SIZE: usize = 1 << 20;
/// The keys a fuzzed retrieval asks for.
const REPLY_KEYS: &[&str] = &["k1", "k2", "k3", "a"];
/// The value limits a fuzzed reply is read with.
const REPLY_LIMITS: [usize; 5] = [0, 1, 16, 1024, 1 << 20];

/// What a target does with one input: whether the parser accepted it.
pub type Check = fn(&[u8]) -> bool;

/// Every target, by the name of its cargo-fuzz binary and corpus directory.
pub const TARGETS: &[(&str, Check)] = &[
    ("session_id", session_id),
    ("envelope", envelope),
    ("validity", validity),
    ("node_list", node_list),
    ("memcached_reply", memcached_reply),
    ("config", config),
];

/// The codecs a first byte chooses: checksum, HMAC, AES-256-GCM, HMAC after a rotation.
fn codecs() -> &'static [Codec; 4] {
    static CODECS: OnceLock<[Codec; 4]> = OnceLock::new();
    CODECS.get_or_init(|| {
        let ring = |keys: &[&[u8]]| KeyRing::parse(&keys.join(&b'\n')).expect("test keys");
        [
            Codec::new(None, MAX_SIZE, CONTEXT),
            Codec::new(Some(ring(&[KEY])), MAX_SIZE, CONTEXT),
            Codec::encrypted(ring(&[KEY]), MAX_SIZE, CONTEXT),
            Codec::new(Some(ring(&[OLD_KEY, KEY])), MAX_SIZE, CONTEXT),
        ]
    })
}

/// The codec the first byte names and the value: the rest, tagged when bit 2 of that byte says
/// so. `None` for an empty input.
fn tagged_input(data: &[u8], bound_to: &str) -> Option<(&'static Codec, Vec<u8>)> {
    let (&selector, rest) = data.split_first()?;
    let codec = &codecs()[usize::from(selector % 4)];
    let value = if selector & 4 != 0 {
        codec.tag_for_fuzzing(bound_to, rest)
    } else {
        rest.to_vec()
    };
    Some((codec, value))
}

/// A session id from a cookie or URL: what parses prints back as the same text.
pub fn session_id(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let Some(id) = SessionId::parse(&text) else {
        return false;
    };
    assert_eq!(id.to_string(), text, "a parsed id prints as its input");
    assert!(id.random().len() >= 16 && !id.node().is_empty());
    true
}

/// A stored session (whole, or its index) read from memcached: what decodes encodes and decodes
/// to the same.
pub fn envelope(data: &[u8]) -> bool {
    let Some((codec, value)) = tagged_input(data, ID) else {
        return false;
    };
    let Ok(stored) = codec.decode_stored(ID, &value) else {
        return false;
    };
    let again = match &stored {
        Stored::Session(session) => codec.encode(ID, session),
        Stored::Index(index) => codec.encode_index(ID, index),
    };
    match again {
        Ok(again) => assert_eq!(codec.decode_stored(ID, &again).expect("re-encoded"), stored),
        Err(Error::TooLarge { .. }) => {}
        Err(e) => panic!("a decoded session does not encode: {e}"),
    }
    true
}

/// A session's validity record: what decodes encodes and decodes to the same record.
pub fn validity(data: &[u8]) -> bool {
    let Some((codec, value)) = tagged_input(data, ID) else {
        return false;
    };
    let Ok(record) = Validity::decode(codec, ID, &value) else {
        return false;
    };
    let again = record.encode(codec, ID);
    assert_eq!(
        Validity::decode(codec, ID, &again).expect("re-encoded"),
        record
    );
    true
}

/// The shared node list record: what decodes encodes and decodes to the same list.
pub fn node_list(data: &[u8]) -> bool {
    let Some((codec, value)) = tagged_input(data, NODE_LIST_BOUND) else {
        return false;
    };
    let Ok(list) = NodeList::decode(codec, &value) else {
        return false;
    };
    let again = list.encode(codec);
    assert_eq!(NodeList::decode(codec, &again).expect("re-encoded"), list);
    true
}

/// A memcached reply. Byte 0 chooses what was asked (a one-line command, `get` or `gets` of
/// [`REPLY_KEYS`]), byte 1 the value limit; the rest is what the server sent. A whole reply
/// depends on its own bytes only and ends where a shorter buffer is incomplete; items are ones
/// asked for, once each, within the limit.
pub fn memcached_reply(data: &[u8]) -> bool {
    let [selector, limit, buf @ ..] = data else {
        return false;
    };
    let expect = match selector % 3 {
        0 => Expect::Line,
        kind => Expect::Items {
            keys: REPLY_KEYS,
            cas: kind == 2,
        },
    };
    let max_value = REPLY_LIMITS[usize::from(*limit) % REPLY_LIMITS.len()];
    match reply::parse(buf, expect, max_value) {
        Ok(Parsed::Complete { reply, len }) => {
            assert!(0 < len && len <= buf.len());
            let alone = reply::parse(&buf[..len], expect, max_value);
            assert_eq!(
                alone,
                Ok(Parsed::Complete {
                    reply: reply.clone(),
                    len
                })
            );
            let shorter = reply::parse(&buf[..len - 1], expect, max_value);
            assert!(
                matches!(shorter, Ok(Parsed::Incomplete { .. })),
                "{shorter:?}"
            );
            if let Reply::Items(items) = &reply {
                for (i, item) in items.iter().enumerate() {
                    assert!(REPLY_KEYS.contains(&item.key.as_str()));
                    assert!(items[..i].iter().all(|other| other.key != item.key));
                    assert!(item.data.len() <= max_value);
                    assert!(item.cas.is_some() || *selector % 3 != 2);
                }
            }
            true
        }
        Ok(Parsed::Incomplete { missing }) => {
            assert!(missing >= 1);
            false
        }
        Err(ReplyError::Oversized(len)) => {
            assert!(len > max_value || len > usize::MAX - buf.len() - 2);
            false
        }
        Err(ReplyError::Malformed(message)) => {
            assert!(message.len() < 400, "an error quotes at most a little");
            false
        }
    }
}

/// Configuration: byte 0 even, the rest is `name=value` lines set on a builder, then built; a
/// `memcachedNodes` value that parses prints and parses back to the same nodes (as the shared
/// node list relies on). Byte 0 odd, the rest is a key file.
pub fn config(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    if mode % 2 == 1 {
        return KeyRing::parse(rest).is_ok();
    }
    let text = String::from_utf8_lossy(rest);
    let mut builder = ConfigBuilder::default();
    for line in text.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if builder.set(name, value).is_ok()
            && name == "memcachedNodes"
            && let Ok(nodes) = parse_node_list(value, None)
        {
            let printed = format_node_list(&nodes);
            assert_eq!(parse_node_list(&printed, None).expect(&printed), nodes);
        }
    }
    builder.build().is_ok()
}

/// Inputs that each target must accept, made from the golden fixtures and the pinned layouts of
/// the unit tests; `scripts/fuzz.sh` starts from them.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "session_id" => [
            "602F7397FBE4D9932E59A9D0E52FE178-n1",
            "602F7397FBE4D9932E59A9D0E52FE178-n1.jvm1",
            "0123456789ABCDEF-node_2.route_A",
        ]
        .map(|id| id.as_bytes().to_vec())
        .into(),
        "envelope" => envelope_seeds(),
        "validity" => record_seeds(|codec| {
            Validity {
                last_accessed: 1_700_000_000_000,
                max_inactive: 1800,
                copies_expire: 1_700_002_250,
            }
            .encode(codec, ID)
        }),
        "node_list" => record_seeds(|codec| {
            let nodes = parse_node_list("n1:127.0.0.1:11211 n2:[::1]:11212", None).unwrap();
            NodeList { version: 7, nodes }.encode(codec)
        }),
        "memcached_reply" => [
            &b"\0\x03STORED\r\n"[..],
            b"\0\x03NOT_FOUND\r\n",
            b"\0\x0342\r\n",
            b"\0\x03VERSION 1.6.18\r\n",
            b"\0\x03SERVER_ERROR object too large for cache\r\n",
            b"\x01\x03END\r\n",
            b"\x01\x03VALUE k1 0 3\r\none\r\nVALUE a 1 0\r\n\r\nEND\r\n",
            b"\x02\x03VALUE k2 0 2 99\r\nhi\r\nEND\r\n",
        ]
        .map(<[u8]>::to_vec)
        .into(),
        "config" => vec![
            b"\0memcachedNodes=n1:localhost:11211,n2:[::1]:11212\nfailoverNodes=n2\n\
              sticky=false\nlockingMode=uriPattern:/cart/.*\nlockFailure=refuse\n\
              operationTimeout=500\nmaxSessionSize=65536\nintegrityKey=env:MSM_KEY\n\
              encryption=aes-256-gcm\nrequestUriIgnorePattern=.*\\.(png|css)$\n\
              storageKeyPrefix=shop.v2"
                .to_vec(),
            b"\0memcachedNodes=localhost:11211".to_vec(),
            [b"\x01", KEY, b"\n", OLD_KEY, b"\n"].concat(),
        ],
        _ => panic!("no target `{target}`"),
    }
}

/// Every golden envelope fixture as read (with the codec that reads it), and untagged to be
/// tagged by the target; plus encrypted ones in clear.
fn envelope_seeds() -> Vec<Vec<u8>> {
    const CRC: u8 = 0;
    const HMAC: u8 = 1;
    const AES: u8 = 2;
    const TAGGED: u8 = 4;
    let fixtures: [(&[u8], u8, usize); 7] = [
        (
            include_bytes!("../../tests/fixtures/envelope-v1-crc32.bin"),
            CRC,
            4,
        ),
        (
            include_bytes!("../../tests/fixtures/envelope-v1-hmac.bin"),
            HMAC,
            32,
        ),
        (
            include_bytes!("../../tests/fixtures/envelope-v2-crc32.bin"),
            CRC,
            4,
        ),
        (
            include_bytes!("../../tests/fixtures/envelope-v2-hmac.bin"),
            HMAC,
            32,
        ),
        (
            include_bytes!("../../tests/fixtures/envelope-v2-hmac-lz4.bin"),
            HMAC,
            32,
        ),
        (
            include_bytes!("../../tests/fixtures/envelope-v2-aes-gcm.bin"),
            AES,
            16,
        ),
        (
            include_bytes!("../../tests/fixtures/envelope-v2-aes-gcm-lz4.bin"),
            AES,
            16,
        ),
    ];
    let mut seeds = Vec::new();
    for (fixture, codec, tag_len) in fixtures {
        seeds.push([&[codec][..], fixture].concat());
        let untagged = &fixture[..fixture.len() - tag_len];
        // Format 1's HMAC is keyed with the secret itself, which only its writer knew.
        if codec == CRC || (codec == HMAC && fixture[4] == 2) {
            seeds.push([&[codec | TAGGED][..], untagged].concat());
        }
        if codec == HMAC && fixture[4] == 2 {
            // The same body in clear under an AES-256-GCM header, for the target to encrypt.
            let mut clear = vec![AES | TAGGED];
            clear.extend_from_slice(&fixture[..12]);
            clear[6] = 3;
            clear.extend_from_slice(b"fixed-nonce!");
            clear.extend_from_slice(&untagged[12..]);
            seeds.push(clear);
        }
    }
    seeds
}

/// A small record encoded by each codec, as read and untagged.
fn record_seeds(encode: impl Fn(&Codec) -> Vec<u8>) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (selector, codec) in codecs().iter().enumerate() {
        let value = encode(codec);
        let tag_len = if selector == 0 { 4 } else { 32 };
        seeds.push([&[selector as u8][..], &value].concat());
        seeds.push([&[selector as u8 | 4][..], &value[..value.len() - tag_len]].concat());
    }
    seeds
}
