use super::*;

const KEY: &[u8] = b"golden-fixture-key-not-a-secret";
const OLD_KEY: &[u8] = b"an-older-key-not-a-secret-either";
const REMOVED_KEY: &[u8] = b"a-removed-key-not-a-secret-either";
const CTX: &str = "shop:";
const ID: &str = "602F7397FBE4D9932E59A9D0E52FE178";
const MAX: usize = 1 << 20;
/// The nonce of the AES-GCM fixtures; production nonces are random.
const FIXED_NONCE: [u8; NONCE_LEN] = *b"fixed-nonce!";

fn ring(keys: &[&[u8]]) -> KeyRing {
    KeyRing::parse(&keys.join(&b'\n')).unwrap()
}

fn fixture_session() -> SessionData {
    let mut s = SessionData {
        creation_time: 1_700_000_000_000,
        last_accessed: 1_700_000_060_000,
        max_inactive: 1800,
        version: 3,
        auth_type: Some("FORM".into()),
        principal: Some("alice".into()),
        ..Default::default()
    };
    s.attributes.insert("cart".into(), vec![1, 2, 3, 255]);
    s.attributes.insert("user".into(), b"alice".to_vec());
    s.attributes.insert("empty".into(), vec![]);
    s
}

/// The fixture session with an attribute that compresses well.
fn compressible_session() -> SessionData {
    let mut s = fixture_session();
    let text = "the quick brown fox jumps over the lazy dog; ".repeat(12);
    s.attributes.insert("text".into(), text.into_bytes());
    s
}

/// Every kind of codec this version writes, with the same first key.
fn codecs() -> Vec<(&'static str, Codec)> {
    vec![
        ("crc32", Codec::new(None, MAX, CTX)),
        ("hmac", Codec::new(Some(ring(&[KEY])), MAX, CTX)),
        ("aes-gcm", Codec::encrypted(ring(&[KEY]), MAX, CTX)),
        ("crc32-lz4", Codec::new(None, MAX, CTX).with_compression(64)),
        (
            "hmac-lz4",
            Codec::new(Some(ring(&[KEY])), MAX, CTX).with_compression(64),
        ),
        (
            "aes-gcm-lz4",
            Codec::encrypted(ring(&[KEY]), MAX, CTX).with_compression(64),
        ),
    ]
}

/// The whole session's envelope as `codec` writes it, with the fixtures' nonce.
fn sealed_with_fixed_nonce(codec: &Codec, session: &SessionData) -> Vec<u8> {
    let attributes = session
        .attributes
        .iter()
        .map(|(name, value)| (name.as_str(), Bytes::new(value)))
        .collect();
    let body = body(&codec.context, ID, session, attributes);
    codec.seal_with_nonce(ID, &body, 0, &FIXED_NONCE).unwrap()
}

fn fixture_path(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A committed fixture of a format this version no longer writes: never rewritten.
fn frozen(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// Compares with a committed fixture; `MSM_BLESS=1` rewrites it after a deliberate change
/// (which must also bump FORMAT_VERSION, keep reading the old one and keep its fixtures).
fn golden(name: &str, actual: &[u8]) -> Vec<u8> {
    if std::env::var_os("MSM_BLESS").is_some() {
        std::fs::write(fixture_path(name), actual).unwrap();
    }
    frozen(name)
}

fn refused(codec: &Codec, value: &[u8]) -> CorruptKind {
    match codec.decode(ID, value) {
        Ok(_) => panic!("value accepted"),
        Err(c) => c.kind,
    }
}

/// A format-2 value without keys around `payload`, with the given flags, and a correct CRC.
fn crc_value(flags: u16, payload: &[u8]) -> Vec<u8> {
    let mut value = Vec::from(&MAGIC[..]);
    value.extend_from_slice(&[2, TAG_CRC32]);
    value.extend_from_slice(&flags.to_le_bytes());
    value.extend_from_slice(&[0; 4]);
    value.extend_from_slice(payload);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&value);
    crc.update(CTX.as_bytes());
    crc.update(b"\0");
    crc.update(ID.as_bytes());
    value.extend_from_slice(&crc.finalize().to_le_bytes());
    value
}

#[test]
fn format_1_fixtures_still_decode() {
    let session = fixture_session();
    let crc = frozen("envelope-v1-crc32.bin");
    let hmac = frozen("envelope-v1-hmac.bin");
    assert_eq!(crc[4], 1);
    assert_eq!(
        Codec::new(None, MAX, CTX).decode(ID, &crc).unwrap(),
        session
    );
    for codec in [
        Codec::new(Some(ring(&[KEY])), MAX, CTX),
        Codec::encrypted(ring(&[KEY]), MAX, CTX),
        // Rotated: the fixture's key verifies in second place.
        Codec::new(Some(ring(&[OLD_KEY, KEY])), MAX, CTX),
    ] {
        assert_eq!(codec.decode(ID, &hmac).unwrap(), session);
        assert_eq!(refused(&codec, &crc), CorruptKind::Unsigned);
    }
    let other = Codec::new(Some(ring(&[OLD_KEY])), MAX, CTX);
    assert_eq!(refused(&other, &hmac), CorruptKind::TagMismatch);
    assert_eq!(
        refused(&Codec::new(None, MAX, CTX), &hmac),
        CorruptKind::UnknownKey
    );
}

#[test]
fn format_2_matches_golden_bytes() {
    let cases = [
        ("envelope-v2-crc32.bin", Codec::new(None, MAX, CTX), false),
        (
            "envelope-v2-hmac.bin",
            Codec::new(Some(ring(&[KEY])), MAX, CTX),
            false,
        ),
        (
            "envelope-v2-aes-gcm.bin",
            Codec::encrypted(ring(&[KEY]), MAX, CTX),
            false,
        ),
        // Compressed fixtures also pin lz4_flex's output: if only a new release of it changed
        // them, check the committed ones still decode before blessing.
        (
            "envelope-v2-hmac-lz4.bin",
            Codec::new(Some(ring(&[KEY])), MAX, CTX).with_compression(64),
            true,
        ),
        (
            "envelope-v2-aes-gcm-lz4.bin",
            Codec::encrypted(ring(&[KEY]), MAX, CTX).with_compression(64),
            true,
        ),
    ];
    for (name, codec, compressed) in cases {
        let session = if compressed {
            compressible_session()
        } else {
            fixture_session()
        };
        let bytes = sealed_with_fixed_nonce(&codec, &session);
        let fixture = golden(name, &bytes);
        assert_eq!(bytes, fixture, "the wire format changed: {name}");
        assert_eq!(&fixture[..5], b"MSMS\x02", "{name}");
        assert_eq!(fixture[6] & 1 == 1, compressed, "{name}: compression flag");
        assert_eq!(codec.decode(ID, &fixture).unwrap(), session, "{name}");
    }
}

#[test]
fn every_combination_round_trips() {
    let mut big = compressible_session();
    big.attributes.insert("blob".into(), vec![0x42; 64 << 10]);
    for (name, codec) in codecs() {
        for session in [SessionData::default(), fixture_session(), big.clone()] {
            let value = codec.encode(ID, &session).unwrap();
            assert_eq!(codec.decode(ID, &value).unwrap(), session, "{name}");
            if session == big {
                assert_eq!(value[6] == 1, name.ends_with("lz4"), "{name}: compression");
            }
        }
    }
}

#[test]
fn compression_applies_above_the_threshold_only_when_it_shrinks() {
    let codec = Codec::new(None, MAX, CTX).with_compression(4096);
    let mut session = fixture_session();
    session.attributes.insert("small".into(), vec![0; 1000]);
    assert_eq!(
        codec.encode(ID, &session).unwrap()[6],
        0,
        "below the threshold"
    );
    session.attributes.insert("large".into(), vec![0; 8000]);
    let value = codec.encode(ID, &session).unwrap();
    assert_eq!(value[6], 1);
    assert!(value.len() < 1000, "{} bytes", value.len());
    // Random bytes do not shrink: stored as they are.
    let mut noise = vec![0u8; 8000];
    getrandom::fill(&mut noise).unwrap();
    let mut session = fixture_session();
    session.attributes.insert("noise".into(), noise);
    let value = codec.encode(ID, &session).unwrap();
    assert_eq!(value[6], 0);
    assert_eq!(codec.decode(ID, &value).unwrap(), session);
}

#[test]
fn the_first_key_signs_and_every_key_verifies() {
    let session = fixture_session();
    for encrypt in [false, true] {
        let make = |keys: &[&[u8]]| {
            if encrypt {
                Codec::encrypted(ring(keys), MAX, CTX)
            } else {
                Codec::new(Some(ring(keys)), MAX, CTX)
            }
        };
        let old = make(&[OLD_KEY]);
        let rotated = make(&[KEY, OLD_KEY]);
        let new = make(&[KEY]);
        let written_before = old.encode(ID, &session).unwrap();
        let written_after = rotated.encode(ID, &session).unwrap();
        assert_eq!(rotated.decode(ID, &written_before).unwrap(), session);
        assert_eq!(new.decode(ID, &written_after).unwrap(), session);
        assert_eq!(refused(&old, &written_after), CorruptKind::UnknownKey);
        assert_eq!(refused(&new, &written_before), CorruptKind::UnknownKey);
        let removed = make(&[REMOVED_KEY]).encode(ID, &session).unwrap();
        let detail = rotated.decode(ID, &removed).unwrap_err().detail;
        assert!(detail.contains("not configured"), "{detail}");
    }
}

#[test]
fn keyed_kinds_are_accepted_either_way_checksums_only_without_keys() {
    let session = fixture_session();
    let plain = Codec::new(None, MAX, CTX);
    let signed = Codec::new(Some(ring(&[KEY])), MAX, CTX);
    let encrypted = Codec::encrypted(ring(&[KEY]), MAX, CTX);
    let by_plain = plain.encode(ID, &session).unwrap();
    let by_signed = signed.encode(ID, &session).unwrap();
    let by_encrypted = encrypted.encode(ID, &session).unwrap();
    // Encryption can be switched on or off one host at a time.
    assert_eq!(signed.decode(ID, &by_encrypted).unwrap(), session);
    assert_eq!(encrypted.decode(ID, &by_signed).unwrap(), session);
    // Anyone can compute a checksum.
    assert_eq!(refused(&signed, &by_plain), CorruptKind::Unsigned);
    assert_eq!(refused(&encrypted, &by_plain), CorruptKind::Unsigned);
    // Without keys, nothing keyed can be checked.
    assert_eq!(refused(&plain, &by_signed), CorruptKind::UnknownKey);
    assert_eq!(refused(&plain, &by_encrypted), CorruptKind::UnknownKey);
}

#[test]
fn encryption_hides_the_content_under_fresh_nonces() {
    let codec = Codec::encrypted(ring(&[KEY]), MAX, CTX);
    let session = fixture_session();
    let a = codec.encode(ID, &session).unwrap();
    let b = codec.encode(ID, &session).unwrap();
    assert_ne!(a[12..24], b[12..24], "nonces repeat");
    for needle in [&b"alice"[..], b"cart", CTX.as_bytes(), ID.as_bytes()] {
        assert!(!a.windows(needle.len()).any(|w| w == needle));
    }
}

#[test]
fn every_flipped_bit_is_detected() {
    for (name, codec) in codecs() {
        let session = if name.ends_with("lz4") {
            compressible_session()
        } else {
            fixture_session()
        };
        let good = codec.encode(ID, &session).unwrap();
        for i in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(codec.decode(ID, &bad).is_err(), "{name}: bit {i} accepted");
        }
    }
}

#[test]
fn truncated_values_are_refused() {
    for (name, codec) in codecs() {
        let good = codec.encode(ID, &compressible_session()).unwrap();
        for len in 0..good.len() {
            assert!(codec.decode(ID, &good[..len]).is_err(), "{name}: {len}");
        }
    }
}

#[test]
fn future_versions_and_garbage_are_refused() {
    for (name, codec) in codecs() {
        let mut future = codec.encode(ID, &fixture_session()).unwrap();
        future[4] = 99;
        let refusal = codec.decode(ID, &future).unwrap_err();
        assert_eq!(refusal.kind, CorruptKind::FutureVersion, "{name}");
        assert!(refusal.detail.contains("format version 99"), "{refusal}");
        for garbage in [
            &b""[..],
            b"MSMS",
            b"\xac\xed\x00\x05garbage, not an envelope",
            b"MSMS\x00\x01\x00\x00 a version 0",
        ] {
            assert_eq!(refused(&codec, garbage), CorruptKind::Malformed, "{name}");
        }
    }
}

#[test]
fn values_are_bound_to_their_session_and_context() {
    for (name, codec) in codecs() {
        let value = codec.encode(ID, &fixture_session()).unwrap();
        let other_id = "0000000000000000000000000000000A";
        assert!(codec.decode(other_id, &value).is_err(), "{name}");
        let other_context = Codec {
            context: "blog:".into(),
            ..codec.clone()
        };
        assert!(other_context.decode(ID, &value).is_err(), "{name}");
    }
}

#[test]
fn attribute_count_limit_applies_both_ways() {
    let codec = Codec::new(None, MAX * 4, CTX);
    let mut session = fixture_session();
    session.attributes.clear();
    for i in 0..MAX_ATTRIBUTES {
        session.attributes.insert(format!("a{i}"), Vec::new());
    }
    let at_limit = codec.encode(ID, &session).unwrap();
    assert_eq!(
        codec.decode(ID, &at_limit).unwrap().attributes.len(),
        MAX_ATTRIBUTES
    );
    let index = Index {
        names: session.attributes.keys().map(|n| (n.clone(), 1)).collect(),
        session: SessionData::default(),
    };
    assert!(codec.encode_index(ID, &index).is_ok());

    session.attributes.insert("one more".into(), Vec::new());
    let refused = codec.encode(ID, &session);
    assert!(
        matches!(&refused, Err(Error::TooLarge { detail, .. }) if detail.contains("65537 attributes")),
        "{refused:?}"
    );
    let index = Index {
        names: session.attributes.keys().map(|n| (n.clone(), 1)).collect(),
        session: SessionData::default(),
    };
    assert!(matches!(
        codec.encode_index(ID, &index),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn size_limit_applies_both_ways_uncompressed() {
    let mut big = fixture_session();
    big.attributes.insert("blob".into(), vec![7; 2048]);
    for compression in [0, 64] {
        let small = Codec::new(None, 1024, CTX).with_compression(compression);
        assert!(matches!(
            small.encode(ID, &big),
            Err(Error::TooLarge { .. })
        ));
    }
    let encoded = Codec::new(None, MAX, CTX).encode(ID, &big).unwrap();
    let small = Codec::new(None, 1024, CTX);
    assert_eq!(refused(&small, &encoded), CorruptKind::Malformed);
    // Compressed, it would fit in 1 KiB; its body would not.
    let compressed = Codec::new(None, MAX, CTX)
        .with_compression(64)
        .encode(ID, &big)
        .unwrap();
    assert!(compressed.len() < 1024);
    let refusal = small.decode(ID, &compressed).unwrap_err();
    assert!(refusal.detail.contains("over maxSessionSize"), "{refusal}");
}

#[test]
fn a_decompression_bomb_is_corrupt() {
    let codec = Codec::new(None, 64 << 10, CTX);
    // A payload of 64 KiB of zeros that declares 16 MiB is refused unread.
    let zeros = vec![0u8; 64 << 10];
    let mut payload = compress(&zeros).unwrap();
    payload[..4].copy_from_slice(&(16u32 << 20).to_le_bytes());
    let refusal = codec
        .decode(ID, &crc_value(FLAG_LZ4, &payload))
        .unwrap_err();
    assert_eq!(refusal.kind, CorruptKind::Malformed);
    assert!(
        refusal.detail.contains("declares 16777216 bytes"),
        "{refusal}"
    );
    // One that understates its length never writes past it.
    payload[..4].copy_from_slice(&100u32.to_le_bytes());
    let refusal = codec
        .decode(ID, &crc_value(FLAG_LZ4, &payload))
        .unwrap_err();
    assert!(
        refusal.detail.contains("undecodable compressed body"),
        "{refusal}"
    );
    // Unknown flags are refused.
    assert_eq!(
        refused(&codec, &crc_value(2, b"anything")),
        CorruptKind::Malformed
    );
}

#[test]
fn a_huge_declared_length_does_not_allocate() {
    // A valid header and tag around a body that claims 2^62 attributes.
    let codec = Codec::new(None, MAX, CTX);
    let mut body = vec![CTX.len() as u8];
    body.extend_from_slice(CTX.as_bytes());
    body.push(ID.len() as u8);
    body.extend_from_slice(ID.as_bytes());
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f]);
    assert_eq!(
        refused(&codec, &crc_value(0, &body)),
        CorruptKind::Malformed
    );
}

#[test]
fn debug_output_shows_no_key() {
    for (name, codec) in codecs() {
        let shown = format!("{codec:?}");
        assert!(!shown.contains("golden-fixture"), "{name}: {shown}");
        assert!(shown.contains("integrity"), "{shown}");
    }
}

#[test]
fn an_index_and_its_attribute_items_round_trip_and_stay_apart() {
    for (name, codec) in codecs() {
        let session = fixture_session();
        let index = Index {
            session: SessionData {
                attributes: Default::default(),
                ..session.clone()
            },
            names: [("cart".to_owned(), 1), ("user".to_owned(), u64::MAX)].into(),
        };
        let stored = codec.encode_index(ID, &index).unwrap();
        assert_eq!(
            codec.decode_stored(ID, &stored).unwrap(),
            Stored::Index(index.clone()),
            "{name}"
        );
        assert!(
            codec.decode(ID, &stored).is_err(),
            "{name}: not a whole session"
        );
        let whole = codec.encode(ID, &session).unwrap();
        assert_eq!(
            codec.decode_stored(ID, &whole).unwrap(),
            Stored::Session(session.clone()),
            "{name}"
        );

        let cart = codec.encode_attribute(ID, "cart", &[1, 2, 3]).unwrap();
        assert_eq!(
            codec.decode_attribute(ID, "cart", &cart).unwrap(),
            vec![1, 2, 3],
            "{name}"
        );
        assert!(
            codec.decode_attribute(ID, "user", &cart).is_err(),
            "{name}: under another name"
        );
        let other = "0123456789ABCDEF0123456789ABCDEF";
        assert!(
            codec.decode_attribute(other, "cart", &cart).is_err(),
            "{name}: under another session"
        );
        assert!(
            codec.decode_stored(ID, &cart).is_err(),
            "{name}: as a session"
        );
        assert!(
            codec.decode_attribute(ID, "cart", &stored).is_err(),
            "{name}: an index as an attribute"
        );

        let log = "test:broadcast:1800000000";
        let event = codec.encode_event(log, b"record").unwrap();
        assert_eq!(
            codec.decode_event(log, &event).unwrap(),
            b"record",
            "{name}"
        );
        assert!(
            codec
                .decode_event("test:broadcast:1800000001", &event)
                .is_err(),
            "{name}: in another log item"
        );
        assert!(
            codec.decode_stored(log, &event).is_err(),
            "{name}: an event as a session"
        );
        assert!(
            codec.decode_event(ID, &cart).is_err(),
            "{name}: an attribute as an event"
        );
    }
}
