//! The stored form of a session: a versioned, tagged envelope around a postcard body.
//!
//! Format 2, written by this version:
//!
//! ```text
//! offset 0  magic "MSMS"
//!        4  format version (2)
//!        5  tag kind: 1 = CRC-32 (4-byte tag), 2 = HMAC-SHA256 (32), 3 = AES-256-GCM (16)
//!        6  flags, u16 little-endian: bit 0 = the payload is LZ4-compressed; bit 1 = a session's
//!           index, bit 2 = one attribute's item (per-attribute updates, see `Index`), bit 3 =
//!           a broadcast event's record (see `crate::broadcast`), at most one of bits 1 to 3;
//!           other bits refused
//!        8  key id, 4 bytes (see `keys`); zeros with CRC-32
//!       12  with AES-256-GCM only: the nonce, 12 bytes
//!   12/24   payload: the postcard body (see `Body`), or with bit 0 its uncompressed length
//!           (u32 little-endian) and the LZ4 block; with AES-256-GCM, all of it encrypted
//!  len - T  tag over every byte before it, the context, a 0 byte and the id's random part;
//!           with AES-256-GCM the GCM tag, with those same bytes before the payload and after
//!           it as associated data
//! ```
//!
//! Format 1 (still read, never written) is magic, version 1, tag kind 1 or 2, flags 0, the body
//! and a tag over every byte before it; its HMAC is keyed with the configured secret itself.
//!
//! Nothing is decompressed, decrypted or decoded before the tag has been verified, and nothing
//! is allocated beyond `maxSessionSize`: the declared uncompressed length is checked first. A
//! value that fails any check is corrupt ([`Corruption`]): it is never handed to the host's
//! deserializer.

mod keys;
mod tag;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_bytes::Bytes;

use crate::config::{Config, Encryption, encryption_without_keys};
use crate::error::{Error, Result};
use crate::session::SessionData;

pub use keys::{KeyRing, MAX_KEYS, MIN_KEY_LEN};
pub(crate) use tag::Integrity;
pub(crate) use tag::unencrypted_tag_len;
use tag::{NONCE_LEN, TAG_AES_256_GCM, TAG_CRC32, TAG_HMAC_SHA256, tag_len, unknown_kind};

const MAGIC: &[u8; 4] = b"MSMS";
/// The format version this code writes.
pub const FORMAT_VERSION: u8 = 2;
/// The oldest format version this code reads.
pub const OLDEST_READABLE_VERSION: u8 = 1;
/// Header of format 1: magic, version, tag kind, flags.
const V1_HEADER_LEN: usize = 8;
/// Header of format 2 without a nonce: format 1's, then the key id.
const HEADER_LEN: usize = 12;
/// Flag: the payload is an LZ4 block preceded by its uncompressed length.
const FLAG_LZ4: u16 = 1;
/// Flag: the value is a session's index (per-attribute updates): its attributes are the names
/// of the session's attributes, with no value (each value is an item of its own).
const FLAG_INDEX: u16 = 2;
/// Flag: the value is one attribute's item (per-attribute updates), bound to its name.
const FLAG_ATTRIBUTE: u16 = 4;
/// Flag: the value is a broadcast event's record, bound to the log item it was appended to.
const FLAG_EVENT: u16 = 8;
/// The flags that say what a value is; a value carries at most one.
const WHAT_FLAGS: u16 = FLAG_INDEX | FLAG_ATTRIBUTE | FLAG_EVENT;
/// The flags a format-2 value may carry.
const KNOWN_FLAGS: u16 = FLAG_LZ4 | WHAT_FLAGS;
/// The name under which an event record's body holds the event.
const EVENT: &str = "event";
/// Most attributes of a session (or names of an index): a value with more is refused without
/// decoding further, and never written.
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

/// Why a stored value was refused; statistics count each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorruptKind {
    /// Not an envelope, too short, oversized, or undecodable although its tag verified.
    Malformed,
    /// Written by a newer version of this software, in a format this one cannot read.
    FutureVersion,
    /// Signed or encrypted with a key that is not configured (a removed key, another
    /// cluster's key), or signed while no key is configured.
    UnknownKey,
    /// Carries only a checksum while keys are configured: anyone could have written it.
    Unsigned,
    /// The tag does not match: altered, truncated, or copied from another session or context.
    TagMismatch,
}

/// A stored value that was refused, and why. Becomes [`Error::Corrupt`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// The kind of refusal.
    pub kind: CorruptKind,
    /// What was wrong, for the log; never key material nor session content.
    pub detail: String,
}

impl Corruption {
    pub(crate) fn new(kind: CorruptKind, detail: impl Into<String>) -> Self {
        Corruption {
            kind,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for Corruption {}

impl From<Corruption> for Error {
    fn from(c: Corruption) -> Error {
        Error::Corrupt(c.detail)
    }
}

fn malformed(detail: impl Into<String>) -> Corruption {
    Corruption::new(CorruptKind::Malformed, detail)
}

/// A session stored as an index of its attributes, each attribute in an item of its own
/// (`updateGranularity="attribute"`).
///
/// Each attribute's item is named by the attribute and a version (see
/// [`crate::keys::KeyScheme::attribute_key`]), and an item is never written over with other
/// content: a write of an attribute stores a new version beside the old one and then the index
/// naming it. The index is the commit point, so a reader gets exactly the attributes of one
/// stored index, never an item a writer stored without (yet) storing its index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    /// The session's metadata; its attributes are empty (they live in their own items).
    pub session: SessionData,
    /// The session's attributes: each name, with the version of its item.
    pub names: std::collections::BTreeMap<String, u64>,
}

/// What a session's own item holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// The whole session.
    Session(SessionData),
    /// The session's index; its attributes are items of their own.
    Index(Index),
}

/// What an attribute's item is bound to: its session and its name (a NUL never appears in the
/// random part of an id, so the two cannot be confused).
fn attribute_bound(id: &str, name: &str) -> String {
    format!("{id}\0{name}")
}

/// Encodes and decodes envelopes for one manager.
#[derive(Clone)]
pub struct Codec {
    integrity: Integrity,
    /// Bodies of at least this many bytes are compressed; 0: never.
    compression_threshold: usize,
    max_size: usize,
    context: String,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key ids at most: the keys are never printed.
        let kind = match self.integrity.envelope_kind() {
            TAG_CRC32 => "crc32",
            TAG_HMAC_SHA256 => "hmac-sha256",
            _ => "aes-256-gcm",
        };
        f.debug_struct("Codec")
            .field("integrity", &kind)
            .field("keys", &self.integrity.keys())
            .field("compression_threshold", &self.compression_threshold)
            .field("max_size", &self.max_size)
            .finish()
    }
}

impl Codec {
    /// A codec for the sessions of one context (named by its key prefix), tagging with CRC-32,
    /// or with HMAC-SHA256 when keys are given. With keys, values that carry only a checksum
    /// are refused: anyone can compute a checksum.
    pub fn new(keys: Option<KeyRing>, max_size: usize, context: &str) -> Self {
        Self::with_integrity(Integrity::new(keys, false), max_size, context)
    }

    /// A codec that encrypts with AES-256-GCM under the first key (the others decrypt).
    pub fn encrypted(keys: KeyRing, max_size: usize, context: &str) -> Self {
        Self::with_integrity(Integrity::new(Some(keys), true), max_size, context)
    }

    fn with_integrity(integrity: Integrity, max_size: usize, context: &str) -> Self {
        Codec {
            integrity,
            compression_threshold: 0,
            max_size,
            context: context.to_owned(),
        }
    }

    /// Compresses bodies of at least `threshold` bytes with LZ4 (0: never). A body that does
    /// not shrink is stored as it is.
    pub fn with_compression(mut self, threshold: usize) -> Self {
        self.compression_threshold = threshold;
        self
    }

    /// The codec a configuration asks for: keys read from `integrityKey`, `encryption`,
    /// `compressionThreshold`, `maxSessionSize` and the key prefix.
    pub fn from_config(config: &Config) -> Result<Self> {
        let keys = config
            .integrity_key
            .as_ref()
            .map(KeyRing::read)
            .transpose()?;
        let codec = match (config.encryption, keys) {
            (Encryption::None, keys) => {
                Codec::new(keys, config.max_session_size, config.keys.prefix())
            }
            (Encryption::Aes256Gcm, Some(keys)) => {
                Codec::encrypted(keys, config.max_session_size, config.keys.prefix())
            }
            (Encryption::Aes256Gcm, None) => return Err(encryption_without_keys()),
        };
        Ok(codec.with_compression(config.compression_threshold))
    }

    /// How this codec tags, for records other than the envelope (validity records, the shared
    /// node list).
    pub(crate) fn integrity(&self) -> &Integrity {
        &self.integrity
    }

    /// What a value of the session with the id's random part `id` belongs to: covered by its
    /// tag, never stored.
    pub(crate) fn bound(&self, id: &str) -> Vec<u8> {
        [self.context.as_bytes(), b"\0", id.as_bytes()].concat()
    }

    /// Encodes the session whose id has the random part `id`; refuses one whose envelope,
    /// uncompressed, would exceed the size limit. The context and the id are inside the tag, so
    /// a value copied to another session's key, or another context's, is refused when read.
    pub fn encode(&self, id: &str, session: &SessionData) -> Result<Vec<u8>> {
        let attributes = session
            .attributes
            .iter()
            .map(|(name, value)| (name.as_str(), Bytes::new(value)))
            .collect();
        self.seal(id, &body(&self.context, id, session, attributes), 0)
    }

    /// Encodes the index of a session stored attribute by attribute (see [`Index`]).
    pub fn encode_index(&self, id: &str, index: &Index) -> Result<Vec<u8>> {
        let versions: Vec<(&str, [u8; 8])> = index
            .names
            .iter()
            .map(|(name, version)| (name.as_str(), version.to_le_bytes()))
            .collect();
        let attributes = versions
            .iter()
            .map(|(name, version)| (*name, Bytes::new(version)))
            .collect();
        let body = body(&self.context, id, &index.session, attributes);
        self.seal(id, &body, FLAG_INDEX)
    }

    /// Encodes the item of the attribute `name` of the session `id`. Its tag binds the session
    /// and the name, so an item copied under another session's or another name's key is refused
    /// when read.
    pub fn encode_attribute(&self, id: &str, name: &str, value: &[u8]) -> Result<Vec<u8>> {
        let bound = attribute_bound(id, name);
        let empty = SessionData::default();
        let body = body(
            &self.context,
            &bound,
            &empty,
            vec![(name, Bytes::new(value))],
        );
        self.seal(&bound, &body, FLAG_ATTRIBUTE)
    }

    /// Encodes a broadcast event's record (`event`, encoded by its writer), bound to `bound`:
    /// the log item it is appended to, so a record copied to another item, or another
    /// context's, is refused when read.
    pub(crate) fn encode_event(&self, bound: &str, event: &[u8]) -> Result<Vec<u8>> {
        let empty = SessionData::default();
        let body = body(
            &self.context,
            bound,
            &empty,
            vec![(EVENT, Bytes::new(event))],
        );
        self.seal(bound, &body, FLAG_EVENT)
    }

    /// Decodes and verifies a broadcast event's record read from the log item `bound`: the
    /// event as its writer encoded it.
    pub(crate) fn decode_event(
        &self,
        bound: &str,
        value: &[u8],
    ) -> std::result::Result<Vec<u8>, Corruption> {
        let (flags, body) = self.open(bound, value)?;
        if flags & FLAG_EVENT == 0 {
            return Err(malformed("not an event's record"));
        }
        let mut record = self.decode_body(bound, &body)?;
        match record.attributes.remove(EVENT) {
            Some(event) if record.attributes.is_empty() => Ok(event),
            _ => Err(malformed("an event's record holding something else")),
        }
    }

    /// Encodes `body`, bound to `bound_id`, with `flags`.
    fn seal(&self, bound_id: &str, body: &Body<'_>, flags: u16) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        if self.integrity.envelope_kind() == TAG_AES_256_GCM {
            // 96 random bits per encryption; see the README on how many one key may make.
            getrandom::fill(&mut nonce).expect("the operating system's random generator failed");
        }
        self.seal_with_nonce(bound_id, body, flags, &nonce)
    }

    /// [`Codec::seal`] with the AES-GCM nonce given (tests pin it to get stable bytes).
    fn seal_with_nonce(
        &self,
        bound_id: &str,
        body: &Body<'_>,
        flags: u16,
        nonce: &[u8; NONCE_LEN],
    ) -> Result<Vec<u8>> {
        let kind = self.integrity.envelope_kind();
        let tag_len = tag_len(kind).expect("a kind this version writes");
        let encrypted = kind == TAG_AES_256_GCM;
        let header_len = HEADER_LEN + if encrypted { NONCE_LEN } else { 0 };
        let body_len_hint: usize = body
            .attributes
            .iter()
            .map(|(k, v)| k.len() + v.len() + 10)
            .sum();
        let mut out = Vec::with_capacity(header_len + body_len_hint + 64 + tag_len);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.push(kind);
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&self.integrity.signing_id());
        if encrypted {
            out.extend_from_slice(nonce);
        }
        let mut out = postcard::to_extend(body, out)
            .map_err(|e| Error::Corrupt(format!("cannot encode session: {e}")))?;
        let size = out.len() + tag_len;
        if size > self.max_size {
            return Err(Error::TooLarge {
                size,
                detail: format!("exceeds maxSessionSize ({} bytes)", self.max_size),
            });
        }
        // A value is never written that its reader would refuse.
        if body.attributes.len() > MAX_ATTRIBUTES {
            return Err(Error::TooLarge {
                size,
                detail: format!(
                    "{} attributes; a session may have at most {MAX_ATTRIBUTES}",
                    body.attributes.len()
                ),
            });
        }
        if self.compression_threshold > 0 && out.len() - header_len >= self.compression_threshold {
            if let Some(packed) = compress(&out[header_len..]) {
                out.truncate(header_len);
                out.extend_from_slice(&packed);
                out[6..8].copy_from_slice(&(flags | FLAG_LZ4).to_le_bytes());
            }
        }
        let bound = self.bound(bound_id);
        if encrypted {
            let (header, payload) = out.split_at_mut(header_len);
            let aad = [&*header, &bound].concat();
            let tag = self.integrity.encrypt(nonce, &aad, payload);
            out.extend_from_slice(&tag);
        } else {
            self.integrity.append_tag(&mut out, &bound);
        }
        Ok(out)
    }

    /// Tags `untagged` (a value without its tag) as this codec's writer would, so that a fuzzer
    /// reaches what lies past the integrity check: under a format-2 envelope header naming
    /// AES-256-GCM, with an encrypting codec, the payload is encrypted with the header's nonce;
    /// anything else gets the codec's record tag, bound to `bound_to` (to nothing for a format-1
    /// envelope). The product never calls it.
    #[doc(hidden)]
    pub fn tag_for_fuzzing(&self, bound_to: &str, untagged: &[u8]) -> Vec<u8> {
        let mut out = untagged.to_vec();
        let aes_header_len = HEADER_LEN + NONCE_LEN;
        let envelope = untagged.get(..4) == Some(MAGIC);
        if envelope
            && untagged.get(4..6) == Some(&[FORMAT_VERSION, TAG_AES_256_GCM])
            && self.integrity.envelope_kind() == TAG_AES_256_GCM
            && untagged.len() >= aes_header_len
        {
            let nonce = untagged[HEADER_LEN..aes_header_len]
                .try_into()
                .expect("a nonce");
            let aad = [&untagged[..aes_header_len], &self.bound(bound_to)].concat();
            let tag = self
                .integrity
                .encrypt(&nonce, &aad, &mut out[aes_header_len..]);
            out.extend_from_slice(&tag);
        } else if envelope && untagged.get(4) == Some(&1) {
            self.integrity.append_tag(&mut out, b"");
        } else {
            self.integrity.append_tag(&mut out, &self.bound(bound_to));
        }
        out
    }

    /// Decodes and verifies a whole session read from memcached under the key of the session
    /// whose id has the random part `id`. An index (see [`Codec::decode_stored`]) is refused.
    pub fn decode(&self, id: &str, value: &[u8]) -> std::result::Result<SessionData, Corruption> {
        match self.decode_stored(id, value)? {
            Stored::Session(session) => Ok(session),
            Stored::Index(_) => Err(malformed("an index of attributes, not a whole session")),
        }
    }

    /// Decodes and verifies what the key of the session whose id has the random part `id`
    /// holds: the whole session, or its index.
    pub fn decode_stored(&self, id: &str, value: &[u8]) -> std::result::Result<Stored, Corruption> {
        let (flags, body) = self.open(id, value)?;
        if flags & FLAG_ATTRIBUTE != 0 {
            return Err(malformed("an attribute's item under a session's key"));
        }
        if flags & FLAG_EVENT != 0 {
            return Err(malformed("an event's record under a session's key"));
        }
        let session = self.decode_body(id, &body)?;
        if flags & FLAG_INDEX == 0 {
            return Ok(Stored::Session(session));
        }
        let mut session = session;
        let mut names = std::collections::BTreeMap::new();
        for (name, version) in std::mem::take(&mut session.attributes) {
            let Ok(version) = <[u8; 8]>::try_from(version.as_slice()) else {
                return Err(malformed(format!("index entry `{name}` holds no version")));
            };
            names.insert(name, u64::from_le_bytes(version));
        }
        Ok(Stored::Index(Index { session, names }))
    }

    /// Decodes and verifies the item of the attribute `name` of the session `id`: its value.
    pub fn decode_attribute(
        &self,
        id: &str,
        name: &str,
        value: &[u8],
    ) -> std::result::Result<Vec<u8>, Corruption> {
        let bound = attribute_bound(id, name);
        let (flags, body) = self.open(&bound, value)?;
        if flags & FLAG_ATTRIBUTE == 0 {
            return Err(malformed("not an attribute's item"));
        }
        let mut item = self.decode_body(&bound, &body)?;
        match item.attributes.remove(name) {
            Some(value) if item.attributes.is_empty() => Ok(value),
            _ => Err(malformed("an attribute's item holding other attributes")),
        }
    }

    /// Verifies a value bound to `bound_id` and returns its flags and its body, decrypted and
    /// decompressed.
    fn open<'v>(
        &self,
        bound_id: &str,
        value: &'v [u8],
    ) -> std::result::Result<(u16, Cow<'v, [u8]>), Corruption> {
        if value.len() > self.max_size {
            return Err(malformed(format!(
                "{} bytes exceed maxSessionSize ({})",
                value.len(),
                self.max_size
            )));
        }
        // Every format's header is at least as long as format 1's.
        if value.len() < V1_HEADER_LEN {
            return Err(malformed("value too short"));
        }
        if &value[..4] != MAGIC {
            return Err(malformed("not a session envelope"));
        }
        match value[4] {
            1 => self.open_v1(value).map(|body| (0, Cow::Borrowed(body))),
            2 => self.open_v2(bound_id, value),
            version if version > FORMAT_VERSION => Err(Corruption::new(
                CorruptKind::FutureVersion,
                format!(
                    "format version {version} is not readable by this version \
                     (reads {OLDEST_READABLE_VERSION} to {FORMAT_VERSION})"
                ),
            )),
            version => Err(malformed(format!("unknown format version {version}"))),
        }
    }

    fn open_v1<'v>(&self, value: &'v [u8]) -> std::result::Result<&'v [u8], Corruption> {
        let kind = value[5];
        let tag_len = unencrypted_tag_len(kind).ok_or_else(|| unknown_kind(kind))?;
        if value.len() < V1_HEADER_LEN + tag_len {
            return Err(malformed("value too short"));
        }
        let flags = u16::from_le_bytes([value[6], value[7]]);
        if flags != 0 {
            return Err(malformed(format!("unknown flags {flags:#06x}")));
        }
        let (covered, tag) = value.split_at(value.len() - tag_len);
        self.integrity.verify_tag(kind, None, covered, b"", tag)?;
        Ok(&covered[V1_HEADER_LEN..])
    }

    fn open_v2<'v>(
        &self,
        bound_id: &str,
        value: &'v [u8],
    ) -> std::result::Result<(u16, Cow<'v, [u8]>), Corruption> {
        let kind = value[5];
        let tag_len = tag_len(kind).ok_or_else(|| unknown_kind(kind))?;
        let encrypted = kind == TAG_AES_256_GCM;
        let header_len = HEADER_LEN + if encrypted { NONCE_LEN } else { 0 };
        if value.len() < header_len + tag_len {
            return Err(malformed("value too short"));
        }
        let flags = u16::from_le_bytes([value[6], value[7]]);
        if flags & !KNOWN_FLAGS != 0 || (flags & WHAT_FLAGS).count_ones() > 1 {
            return Err(malformed(format!("unknown flags {flags:#06x}")));
        }
        let key_id = value[8..12].try_into().expect("4 bytes");
        let (covered, tag) = value.split_at(value.len() - tag_len);
        let (header, payload) = covered.split_at(header_len);
        let bound = self.bound(bound_id);
        let payload = if encrypted {
            let nonce = header[HEADER_LEN..].try_into().expect("a nonce");
            let aad = [header, &bound].concat();
            let mut plain = payload.to_vec();
            let tag = tag.try_into().expect("a GCM tag");
            self.integrity
                .decrypt(&key_id, nonce, &aad, &mut plain, tag)?;
            Cow::Owned(plain)
        } else {
            self.integrity
                .verify_tag(kind, Some(&key_id), covered, &bound, tag)?;
            Cow::Borrowed(payload)
        };
        if flags & FLAG_LZ4 != 0 {
            Ok((flags, Cow::Owned(decompress(&payload, self.max_size)?)))
        } else {
            Ok((flags, payload))
        }
    }

    /// Decodes a verified body and checks it belongs to `bound_id` in this context.
    fn decode_body(
        &self,
        bound_id: &str,
        body: &[u8],
    ) -> std::result::Result<SessionData, Corruption> {
        let (body, rest): (Body<'_>, &[u8]) = postcard::take_from_bytes(body)
            .map_err(|e| malformed(format!("undecodable body: {e}")))?;
        if !rest.is_empty() {
            return Err(malformed("trailing bytes after body"));
        }
        if body.context != self.context || body.id != bound_id {
            return Err(malformed("value belongs to another session or context"));
        }
        if body.attributes.len() > MAX_ATTRIBUTES {
            return Err(malformed("too many attributes"));
        }
        let mut attributes = std::collections::BTreeMap::new();
        for (name, bytes) in body.attributes {
            if attributes.insert(name.to_owned(), bytes.to_vec()).is_some() {
                return Err(malformed(format!("attribute `{name}` appears twice")));
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
            read: None,
        })
    }
}

/// The body of `session` (its attributes given as they are stored), bound to `id`.
fn body<'a>(
    context: &'a str,
    id: &'a str,
    session: &'a SessionData,
    attributes: Vec<(&'a str, &'a Bytes)>,
) -> Body<'a> {
    Body {
        context,
        id,
        creation_time: session.creation_time,
        last_accessed: session.last_accessed,
        max_inactive: session.max_inactive,
        version: session.version,
        auth_type: session.auth_type.as_deref(),
        principal: session.principal.as_deref(),
        attributes,
    }
}

/// The compressed payload of `body` (its length, then the LZ4 block), if it is smaller.
fn compress(body: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(body.len()).ok()?;
    let mut packed = vec![0u8; 4 + lz4_flex::block::get_maximum_output_size(body.len())];
    packed[..4].copy_from_slice(&len.to_le_bytes());
    let written = lz4_flex::block::compress_into(body, &mut packed[4..]).ok()?;
    packed.truncate(4 + written);
    (packed.len() < body.len()).then_some(packed)
}

/// The body of a compressed payload, refused without allocating when it declares more than
/// `max_size` bytes (a decompression bomb is corrupt, not an out-of-memory).
fn decompress(payload: &[u8], max_size: usize) -> std::result::Result<Vec<u8>, Corruption> {
    let (len, block) = payload
        .split_first_chunk::<4>()
        .ok_or_else(|| malformed("compressed payload too short"))?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > max_size {
        return Err(malformed(format!(
            "compressed body declares {len} bytes, over maxSessionSize ({max_size})"
        )));
    }
    let mut body = vec![0u8; len];
    match lz4_flex::block::decompress_into(block, &mut body) {
        Ok(written) if written == len => Ok(body),
        _ => Err(malformed("undecodable compressed body")),
    }
}

#[cfg(test)]
mod tests;
