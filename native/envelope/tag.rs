//! Integrity tags and encryption: which kind a value carries, and computing and checking it.
//!
//! Without keys every value carries a CRC-32 (it detects accidents, not forgery). With keys a
//! value carries an HMAC-SHA256 or, when encryption is configured, is AES-256-GCM encrypted and
//! carries the GCM tag. A manager with keys accepts both keyed kinds (so encryption can be
//! switched on or off one host at a time) and refuses checksummed values, which anyone can
//! compute; a manager without keys refuses keyed values, which it cannot check.

use std::sync::Arc;

use aes_gcm::AeadInOut as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::keys::{Key, KeyId, KeyRing, hex};
use super::{CorruptKind, Corruption};

type HmacSha256 = Hmac<Sha256>;

/// Tag kind: CRC-32, 4 bytes.
pub(crate) const TAG_CRC32: u8 = 1;
/// Tag kind: HMAC-SHA256, 32 bytes.
pub(crate) const TAG_HMAC_SHA256: u8 = 2;
/// Tag kind: AES-256-GCM, the payload is encrypted and followed by the 16-byte GCM tag.
pub(crate) const TAG_AES_256_GCM: u8 = 3;
/// Bytes of an AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;

/// The length of the tag of a kind; `None` for a kind this version does not know.
pub(crate) fn tag_len(kind: u8) -> Option<usize> {
    match kind {
        TAG_CRC32 => Some(4),
        TAG_HMAC_SHA256 => Some(32),
        TAG_AES_256_GCM => Some(16),
        _ => None,
    }
}

/// The length of the tag of a kind that small records and format-1 envelopes may carry (any but
/// AES-256-GCM); `None` for any other.
pub(crate) fn unencrypted_tag_len(kind: u8) -> Option<usize> {
    tag_len(kind).filter(|_| kind != TAG_AES_256_GCM)
}

/// How one manager protects what it writes and checks what it reads.
#[derive(Clone)]
pub(crate) struct Integrity {
    keys: Option<Arc<KeyRing>>,
    encrypt: bool,
}

impl Integrity {
    /// Checksums without keys, HMAC-SHA256 (or AES-256-GCM with `encrypt`) with them.
    pub(crate) fn new(keys: Option<KeyRing>, encrypt: bool) -> Integrity {
        Integrity {
            encrypt: encrypt && keys.is_some(),
            keys: keys.map(Arc::new),
        }
    }

    /// The keys, if any.
    pub(crate) fn keys(&self) -> Option<&KeyRing> {
        self.keys.as_deref()
    }

    /// The tag kind of the envelopes this manager writes.
    pub(crate) fn envelope_kind(&self) -> u8 {
        if self.encrypt {
            TAG_AES_256_GCM
        } else {
            self.record_kind()
        }
    }

    /// The tag kind of small records (validity records, the shared node list), which carry
    /// nothing secret and are never encrypted.
    pub(crate) fn record_kind(&self) -> u8 {
        match self.keys {
            Some(_) => TAG_HMAC_SHA256,
            None => TAG_CRC32,
        }
    }

    /// The id of the key that signs or encrypts; zeros without keys.
    pub(crate) fn signing_id(&self) -> KeyId {
        self.keys.as_ref().map_or([0; 4], |k| k.signing().id)
    }

    /// Appends the tag of [`Integrity::record_kind`] over `out` followed by `bound`: bytes the
    /// tag covers without being stored (what the value must belong to).
    pub(crate) fn append_tag(&self, out: &mut Vec<u8>, bound: &[u8]) {
        match &self.keys {
            None => {
                let crc = crc32(out, bound);
                out.extend_from_slice(&crc);
            }
            Some(keys) => {
                let mac = hmac(&keys.signing().mac, out, bound);
                out.extend_from_slice(&mac.finalize().into_bytes());
            }
        }
    }

    /// Checks a tag written by [`Integrity::append_tag`] of a value of `kind` naming `key_id`.
    /// A format-1 value names no key (`None`): its HMACs were keyed with the secret itself, so
    /// each configured key is tried.
    pub(crate) fn verify_tag(
        &self,
        kind: u8,
        key_id: Option<&KeyId>,
        covered: &[u8],
        bound: &[u8],
        tag: &[u8],
    ) -> Result<(), Corruption> {
        match kind {
            TAG_CRC32 => self.verify_crc(covered, bound, tag),
            TAG_HMAC_SHA256 => {
                let verifies =
                    |mac: &Hmac<Sha256>| hmac(mac, covered, bound).verify_slice(tag).is_ok();
                let verified = match key_id {
                    Some(key_id) => verifies(&self.key(kind, key_id)?.mac),
                    None => {
                        let keys = self.keys.as_ref().ok_or_else(|| no_keys(kind))?;
                        keys.all().iter().any(|key| verifies(&key.legacy_mac))
                    }
                };
                if verified { Ok(()) } else { Err(mismatch()) }
            }
            _ => Err(unknown_kind(kind)),
        }
    }

    /// Encrypts `payload` in place with the signing key; returns the GCM tag. `aad` is
    /// authenticated but not encrypted.
    pub(crate) fn encrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        payload: &mut [u8],
    ) -> [u8; 16] {
        let keys = self
            .keys
            .as_ref()
            .expect("encryption is only configured with keys");
        keys.signing()
            .cipher
            .encrypt_inout_detached(&(*nonce).into(), aad, payload.into())
            .expect("a session is far below AES-GCM's 64 GiB message limit")
            .into()
    }

    /// Decrypts `payload` in place with the key `key_id` names, checking the GCM tag.
    pub(crate) fn decrypt(
        &self,
        key_id: &KeyId,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        payload: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), Corruption> {
        self.key(TAG_AES_256_GCM, key_id)?
            .cipher
            .decrypt_inout_detached(&(*nonce).into(), aad, payload.into(), &(*tag).into())
            .map_err(|_| mismatch())
    }

    fn verify_crc(&self, covered: &[u8], bound: &[u8], tag: &[u8]) -> Result<(), Corruption> {
        if self.keys.is_some() {
            return Err(Corruption::new(
                CorruptKind::Unsigned,
                "value carries a checksum only, but integrityKey is configured",
            ));
        }
        if tag == crc32(covered, bound) {
            Ok(())
        } else {
            Err(mismatch())
        }
    }

    /// The configured key a keyed value of `kind` names.
    fn key(&self, kind: u8, key_id: &KeyId) -> Result<&Key, Corruption> {
        let keys = self.keys.as_ref().ok_or_else(|| no_keys(kind))?;
        keys.find(key_id).ok_or_else(|| {
            Corruption::new(
                CorruptKind::UnknownKey,
                format!(
                    "value names key id {}, which is not configured",
                    hex(key_id)
                ),
            )
        })
    }
}

/// `mac` over `covered` then `bound`, the way every tag binds a value to what it belongs to.
fn hmac(mac: &HmacSha256, covered: &[u8], bound: &[u8]) -> HmacSha256 {
    let mut mac = mac.clone();
    mac.update(covered);
    mac.update(bound);
    mac
}

fn crc32(covered: &[u8], bound: &[u8]) -> [u8; 4] {
    let mut crc = crc32fast::Hasher::new();
    crc.update(covered);
    crc.update(bound);
    crc.finalize().to_le_bytes()
}

fn mismatch() -> Corruption {
    Corruption::new(CorruptKind::TagMismatch, "integrity tag mismatch")
}

/// A tag kind this version does not know.
pub(super) fn unknown_kind(kind: u8) -> Corruption {
    Corruption::new(
        CorruptKind::Malformed,
        format!("unknown integrity tag kind {kind}"),
    )
}

fn no_keys(kind: u8) -> Corruption {
    let what = if kind == TAG_AES_256_GCM {
        "encrypted"
    } else {
        "signed"
    };
    Corruption::new(
        CorruptKind::UnknownKey,
        format!("value is {what}, but no integrityKey is configured"),
    )
}
