//! The stored form of a session: a versioned, tagged envelope around a postcard body.
//!
//! ```text
//! offset 0  magic "MSMS"
//!        4  format version (1)
//!        5  tag kind: 1 = CRC-32 (4 bytes), 2 = HMAC-SHA256 (32 bytes)
//!        6  flags, u16 little-endian (none defined yet; unknown bits are refused)
//!        8  postcard body (see `Body`)
//!  len - T  tag over every byte before it
//! ```
//!
//! A value that fails any check is corrupt: it is never handed to the host's deserializer.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_bytes::Bytes;
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::session::SessionData;

const MAGIC: &[u8; 4] = b"MSMS";
/// The format version this code writes.
pub const FORMAT_VERSION: u8 = 1;
const HEADER_LEN: usize = 8;
pub(crate) const TAG_CRC32: u8 = 1;
pub(crate) const TAG_HMAC_SHA256: u8 = 2;
/// Attribute count above which a value is refused without decoding further.
const MAX_ATTRIBUTES: usize = 1 << 16;

/// The postcard body, borrowing from the value it is decoded from so nothing is allocated before
/// the whole value has been checked.
#[derive(Serialize, Deserialize)]
struct Body<'a> {
    context: &'a str,
    id: &'a str,
    creation_time: u64,
    last_accessed: u64,
    max_inactive: i32,
    version: u64,
    auth_type: Option<&'a str>,
    principal: Option<&'a str>,
    #[serde(borrow)]
    attributes: Vec<(&'a str, &'a Bytes)>,
}

/// How envelopes are tagged and verified.
#[derive(Clone)]
enum Integrity {
    Checksum,
    Hmac(Hmac<Sha256>),
}

/// Encodes and decodes envelopes for one manager.
#[derive(Clone)]
pub struct Codec {
    integrity: Integrity,
    max_size: usize,
    context: String,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is never printed.
        let kind = match self.integrity {
            Integrity::Checksum => "crc32",
            Integrity::Hmac(_) => "hmac-sha256",
        };
        f.debug_struct("Codec")
            .field("integrity", &kind)
            .field("max_size", &self.max_size)
            .finish()
    }
}

fn corrupt(reason: impl Into<String>) -> Error {
    Error::Corrupt(reason.into())
}

impl Codec {
    /// A codec for the sessions of one context (named by its key prefix), tagging with CRC-32,
    /// or with HMAC-SHA256 when a key is given. With a key, values that carry only a checksum are
    /// refused: anyone can compute a checksum.
    pub fn new(hmac_key: Option<&[u8]>, max_size: usize, context: &str) -> Self {
        let integrity = match hmac_key {
            // HMAC accepts keys of any length.
            Some(key) => Integrity::Hmac(Hmac::new_from_slice(key).expect("any key length")),
            None => Integrity::Checksum,
        };
        Codec {
            integrity,
            max_size,
            context: context.to_owned(),
        }
    }

    /// The tag kind this codec writes and accepts, and the tag's length.
    pub(crate) fn tag_kind(&self) -> (u8, usize) {
        match self.integrity {
            Integrity::Checksum => (TAG_CRC32, 4),
            Integrity::Hmac(_) => (TAG_HMAC_SHA256, 32),
        }
    }

    /// Appends the tag over `out` followed by `bound`: bytes the tag covers without being
    /// stored (what the value must belong to).
    pub(crate) fn append_tag(&self, out: &mut Vec<u8>, bound: &[u8]) {
        match &self.integrity {
            Integrity::Checksum => {
                let mut crc = crc32fast::Hasher::new();
                crc.update(out);
                crc.update(bound);
                out.extend_from_slice(&crc.finalize().to_le_bytes());
            }
            Integrity::Hmac(mac) => {
                let mut mac = mac.clone();
                mac.update(out);
                mac.update(bound);
                out.extend_from_slice(&mac.finalize().into_bytes());
            }
        }
    }

    /// Checks a tag written by [`Codec::append_tag`].
    pub(crate) fn verify_tag(&self, covered: &[u8], bound: &[u8], tag: &[u8]) -> bool {
        match &self.integrity {
            Integrity::Checksum => {
                let mut crc = crc32fast::Hasher::new();
                crc.update(covered);
                crc.update(bound);
                tag == crc.finalize().to_le_bytes()
            }
            Integrity::Hmac(mac) => {
                let mut mac = mac.clone();
                mac.update(covered);
                mac.update(bound);
                mac.verify_slice(tag).is_ok()
            }
        }
    }

    /// The context's name as the key prefix states it.
    pub(crate) fn context(&self) -> &str {
        &self.context
    }

    /// Encodes the session whose id has the random part `id`; refuses one whose envelope would
    /// exceed the size limit. The context and the id are inside the tag, so a value copied to
    /// another session's key, or another context's, is refused when read.
    pub fn encode(&self, id: &str, session: &SessionData) -> Result<Vec<u8>> {
        let body = Body {
            context: &self.context,
            id,
            creation_time: session.creation_time,
            last_accessed: session.last_accessed,
            max_inactive: session.max_inactive,
            version: session.version,
            auth_type: session.auth_type.as_deref(),
            principal: session.principal.as_deref(),
            attributes: session
                .attributes
                .iter()
                .map(|(name, value)| (name.as_str(), Bytes::new(value)))
                .collect(),
        };
        let (kind, tag_len) = self.tag_kind();
        let body_len_hint: usize = session
            .attributes
            .iter()
            .map(|(k, v)| k.len() + v.len() + 10)
            .sum();
        let mut out = Vec::with_capacity(HEADER_LEN + body_len_hint + 64 + tag_len);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.push(kind);
        out.extend_from_slice(&0u16.to_le_bytes());
        let mut out = postcard::to_extend(&body, out)
            .map_err(|e| Error::Corrupt(format!("cannot encode session: {e}")))?;
        self.append_tag(&mut out, b"");
        if out.len() > self.max_size {
            return Err(Error::TooLarge {
                size: out.len(),
                detail: format!("exceeds maxSessionSize ({} bytes)", self.max_size),
            });
        }
        Ok(out)
    }

    /// Decodes and verifies a value read from memcached under the key of the session whose id
    /// has the random part `id`.
    pub fn decode(&self, id: &str, value: &[u8]) -> Result<SessionData> {
        if value.len() > self.max_size {
            return Err(corrupt(format!(
                "{} bytes exceed maxSessionSize ({})",
                value.len(),
                self.max_size
            )));
        }
        let (kind, tag_len) = self.tag_kind();
        if value.len() < HEADER_LEN + tag_len {
            return Err(corrupt("value too short"));
        }
        if &value[..4] != MAGIC {
            return Err(corrupt("not a session envelope"));
        }
        if value[4] != FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {} is not readable by this version (reads {FORMAT_VERSION})",
                value[4]
            )));
        }
        if value[5] != kind {
            return Err(corrupt(match (value[5], kind) {
                (TAG_HMAC_SHA256, _) => "value is signed, but no integrity key is configured",
                (TAG_CRC32, _) => "value is not signed, but an integrity key is configured",
                _ => "unknown integrity tag kind",
            }));
        }
        let flags = u16::from_le_bytes([value[6], value[7]]);
        if flags != 0 {
            return Err(corrupt(format!("unknown flags {flags:#06x}")));
        }
        let (covered, tag) = value.split_at(value.len() - tag_len);
        if !self.verify_tag(covered, b"", tag) {
            return Err(corrupt("integrity tag mismatch"));
        }
        let (body, rest): (Body<'_>, &[u8]) = postcard::take_from_bytes(&covered[HEADER_LEN..])
            .map_err(|e| corrupt(format!("undecodable body: {e}")))?;
        if !rest.is_empty() {
            return Err(corrupt("trailing bytes after body"));
        }
        if body.context != self.context || body.id != id {
            return Err(corrupt("value belongs to another session or context"));
        }
        if body.attributes.len() > MAX_ATTRIBUTES {
            return Err(corrupt("too many attributes"));
        }
        let mut attributes = std::collections::BTreeMap::new();
        for (name, bytes) in body.attributes {
            if attributes.insert(name.to_owned(), bytes.to_vec()).is_some() {
                return Err(corrupt(format!("attribute `{name}` appears twice")));
            }
        }
        Ok(SessionData {
            creation_time: body.creation_time,
            last_accessed: body.last_accessed,
            max_inactive: body.max_inactive,
            version: body.version,
            auth_type: body.auth_type.map(str::to_owned),
            principal: body.principal.map(str::to_owned),
            attributes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"golden-fixture-key-not-a-secret";
    const CTX: &str = "shop:";
    const ID: &str = "602F7397FBE4D9932E59A9D0E52FE178";

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

    /// Compares with a committed fixture; `MSM_BLESS=1` rewrites it after a deliberate change
    /// (which must also bump FORMAT_VERSION and keep reading the old one).
    fn golden(name: &str, actual: &[u8]) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("MSM_BLESS").is_some() {
            std::fs::write(&path, actual).unwrap();
        }
        std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
    }

    #[test]
    fn checksum_envelope_matches_golden_bytes() {
        let codec = Codec::new(None, 1 << 20, CTX);
        let bytes = codec.encode(ID, &fixture_session()).unwrap();
        let fixture = golden("envelope-v1-crc32.bin", &bytes);
        assert_eq!(bytes, fixture, "the wire format changed");
        assert_eq!(codec.decode(ID, &fixture).unwrap(), fixture_session());
    }

    #[test]
    fn hmac_envelope_matches_golden_bytes() {
        let codec = Codec::new(Some(KEY), 1 << 20, CTX);
        let bytes = codec.encode(ID, &fixture_session()).unwrap();
        let fixture = golden("envelope-v1-hmac.bin", &bytes);
        assert_eq!(bytes, fixture, "the wire format changed");
        assert_eq!(codec.decode(ID, &fixture).unwrap(), fixture_session());
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        for codec in [
            Codec::new(None, 1 << 20, CTX),
            Codec::new(Some(KEY), 1 << 20, CTX),
        ] {
            let good = codec.encode(ID, &fixture_session()).unwrap();
            for i in 0..good.len() {
                for bit in 0..8 {
                    let mut bad = good.clone();
                    bad[i] ^= 1 << bit;
                    assert!(
                        matches!(codec.decode(ID, &bad), Err(Error::Corrupt(_))),
                        "flip of bit {bit} at {i} accepted"
                    );
                }
            }
        }
    }

    #[test]
    fn refuses_truncated_foreign_and_future_values() {
        let codec = Codec::new(None, 1 << 20, CTX);
        let good = codec.encode(ID, &fixture_session()).unwrap();
        for len in 0..good.len() {
            assert!(
                codec.decode(ID, &good[..len]).is_err(),
                "truncation to {len}"
            );
        }
        let mut future = good.clone();
        future[4] = FORMAT_VERSION + 1;
        let message = codec.decode(ID, &future).unwrap_err().to_string();
        assert!(message.contains("format version 2"), "{message}");
        assert!(
            codec
                .decode(ID, b"garbage that is no envelope at all")
                .is_err()
        );
    }

    #[test]
    fn keys_do_not_mix() {
        let plain = Codec::new(None, 1 << 20, CTX);
        let signed = Codec::new(Some(KEY), 1 << 20, CTX);
        let other = Codec::new(Some(b"another key"), 1 << 20, CTX);
        let session = fixture_session();
        assert!(
            signed
                .decode(ID, &plain.encode(ID, &session).unwrap())
                .is_err()
        );
        assert!(
            plain
                .decode(ID, &signed.encode(ID, &session).unwrap())
                .is_err()
        );
        assert!(
            other
                .decode(ID, &signed.encode(ID, &session).unwrap())
                .is_err()
        );
    }

    #[test]
    fn values_are_bound_to_their_session_and_context() {
        let codec = Codec::new(Some(KEY), 1 << 20, CTX);
        let value = codec.encode(ID, &fixture_session()).unwrap();
        let other_id = "0000000000000000000000000000000A";
        assert!(matches!(
            codec.decode(other_id, &value),
            Err(Error::Corrupt(_))
        ));
        let other_context = Codec::new(Some(KEY), 1 << 20, "blog:");
        assert!(matches!(
            other_context.decode(ID, &value),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn size_limit_applies_both_ways() {
        let small = Codec::new(None, 1024, CTX);
        let mut big = fixture_session();
        big.attributes.insert("blob".into(), vec![7; 2048]);
        assert!(matches!(
            small.encode(ID, &big),
            Err(Error::TooLarge { .. })
        ));
        let encoded = Codec::new(None, 1 << 20, CTX).encode(ID, &big).unwrap();
        assert!(matches!(small.decode(ID, &encoded), Err(Error::Corrupt(_))));
    }

    #[test]
    fn a_huge_declared_length_does_not_allocate() {
        // A valid header and tag around a body that claims 2^62 attributes.
        let codec = Codec::new(None, 1 << 20, CTX);
        let mut value = Vec::from(&MAGIC[..]);
        value.extend_from_slice(&[FORMAT_VERSION, TAG_CRC32, 0, 0]);
        value.push(CTX.len() as u8);
        value.extend_from_slice(CTX.as_bytes());
        value.push(ID.len() as u8);
        value.extend_from_slice(ID.as_bytes());
        value.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        value.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f]);
        let crc = crc32fast::hash(&value).to_le_bytes();
        value.extend_from_slice(&crc);
        assert!(matches!(codec.decode(ID, &value), Err(Error::Corrupt(_))));
    }
}
