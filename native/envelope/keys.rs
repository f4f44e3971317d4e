//! The integrity keys of a manager and what is derived from them.
//!
//! `integrityKey` names a file or an environment variable holding one key per line (surrounding
//! whitespace removed, empty lines ignored). The first key signs or encrypts what this manager
//! writes; every key verifies or decrypts what it reads, so keys can be rotated without
//! refusing the sessions already stored (see the README's rotation procedure).
//!
//! One secret serves several purposes, so each use gets its own key, derived with HKDF-SHA256
//! (RFC 5869, no salt, a distinct `info` per use): the HMAC-SHA256 key of format 2, the
//! AES-256-GCM key, and a 4-byte key id stored in every value so a reader picks the right key
//! without trying each. Format 1 signed with the secret itself; that key is kept to verify
//! format-1 values only.
//!
//! Key material never leaves this module: not in logs, error messages or `Debug` output. Only
//! key ids (a few bytes of a one-way derivation, also stored in every value) are shown.

use aes_gcm::{Aes256Gcm, KeyInit as _};
use hkdf::Hkdf;
use hmac::Hmac;
use sha2::Sha256;

use crate::config::KeySource;
use crate::error::{Error, Result};

/// Shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 16;
/// Most keys one source may hold: a reader of format-1 values, which carry no key id, tries
/// each of them.
pub const MAX_KEYS: usize = 16;

/// The id of a key as stored in format-2 values.
pub(crate) type KeyId = [u8; 4];

const INFO_KEY_ID: &[u8] = b"msm envelope v2 key id";
const INFO_HMAC: &[u8] = b"msm envelope v2 hmac-sha256";
const INFO_AES: &[u8] = b"msm envelope v2 aes-256-gcm";

/// One configured key, ready for each of its uses.
#[derive(Clone)]
pub(crate) struct Key {
    /// Its id in format-2 values.
    pub(crate) id: KeyId,
    /// HMAC-SHA256 keyed with the secret itself: verifies format-1 values.
    pub(crate) legacy_mac: Hmac<Sha256>,
    /// HMAC-SHA256 keyed with the derived MAC key: tags format-2 values and records.
    pub(crate) mac: Hmac<Sha256>,
    /// AES-256-GCM keyed with the derived encryption key.
    pub(crate) cipher: Aes256Gcm,
}

impl Key {
    fn new(secret: &[u8]) -> Key {
        let hkdf = Hkdf::<Sha256>::new(None, secret);
        let mut id = [0u8; 4];
        let mut mac_key = [0u8; 32];
        let mut aes_key = [0u8; 32];
        for (info, out) in [
            (INFO_KEY_ID, &mut id[..]),
            (INFO_HMAC, &mut mac_key[..]),
            (INFO_AES, &mut aes_key[..]),
        ] {
            hkdf.expand(info, out)
                .expect("HKDF-SHA256 yields up to 8160 bytes");
        }
        Key {
            id,
            legacy_mac: Hmac::new_from_slice(secret).expect("HMAC takes keys of any length"),
            mac: Hmac::new_from_slice(&mac_key).expect("HMAC takes keys of any length"),
            cipher: Aes256Gcm::new_from_slice(&aes_key).expect("a 32-byte AES-256 key"),
        }
    }
}

/// The keys of one manager, in the order configured: the first signs or encrypts, all verify
/// or decrypt.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Ids only: they are derived one way and stored in every value anyway.
        let ids: Vec<String> = self.keys.iter().map(|k| hex(&k.id)).collect();
        f.debug_struct("KeyRing").field("key_ids", &ids).finish()
    }
}

/// Lower-case hexadecimal of a key id, as logs and messages show it.
pub(crate) fn hex(id: &KeyId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl KeyRing {
    /// Keys from the text of a key source: one per line, surrounding whitespace removed, empty
    /// lines ignored. Each key must be at least [`MIN_KEY_LEN`] bytes of text (no control
    /// characters, so a binary key file is refused rather than split at random), and no key may
    /// appear twice. The reason of a refusal names lines, never their content.
    pub fn parse(text: &[u8]) -> std::result::Result<KeyRing, String> {
        let mut secrets: Vec<(usize, &[u8])> = Vec::new();
        for (index, line) in text.split(|&b| b == b'\n').enumerate() {
            let secret = line.trim_ascii();
            if secret.is_empty() {
                continue;
            }
            let line = index + 1;
            if secret.iter().any(|b| b.is_ascii_control()) {
                return Err(format!(
                    "line {line} holds control characters; keys are lines of text \
                     (for example `openssl rand -base64 32`), not binary"
                ));
            }
            if secret.len() < MIN_KEY_LEN {
                return Err(format!(
                    "the key on line {line} is shorter than {MIN_KEY_LEN} bytes"
                ));
            }
            if let Some((first, _)) = secrets.iter().find(|(_, s)| *s == secret) {
                return Err(format!("lines {first} and {line} hold the same key"));
            }
            secrets.push((line, secret));
        }
        if secrets.is_empty() {
            return Err("no key found".into());
        }
        if secrets.len() > MAX_KEYS {
            return Err(format!(
                "{} keys; at most {MAX_KEYS} are accepted",
                secrets.len()
            ));
        }
        let keys: Vec<Key> = secrets.iter().map(|(_, s)| Key::new(s)).collect();
        for (i, key) in keys.iter().enumerate() {
            if let Some(j) = keys[..i].iter().position(|k| k.id == key.id) {
                return Err(format!(
                    "the keys on lines {} and {} have the same key id; replace one of them",
                    secrets[j].0, secrets[i].0
                ));
            }
        }
        Ok(KeyRing { keys })
    }

    /// Reads the keys from their source (`integrityKey`). A refusal is a configuration error
    /// naming the attribute and the source, never a key.
    pub fn read(source: &KeySource) -> Result<KeyRing> {
        let text = match source {
            KeySource::File(path) => std::fs::read(path).map_err(|e| e.to_string()),
            KeySource::Env(var) => std::env::var(var)
                .map(String::into_bytes)
                .map_err(|e| e.to_string()),
        };
        text.and_then(|text| KeyRing::parse(&text))
            .map_err(|reason| Error::config("integrityKey", &source.to_string(), reason))
    }

    /// The key that signs or encrypts.
    pub(crate) fn signing(&self) -> &Key {
        &self.keys[0]
    }

    /// The key with this id, if it is configured.
    pub(crate) fn find(&self, id: &KeyId) -> Option<&Key> {
        self.keys.iter().find(|k| &k.id == id)
    }

    /// Every key, the signing key first.
    pub(crate) fn all(&self) -> &[Key] {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_per_line_first_signs() {
        let ring =
            KeyRing::parse(b"  new-key-0123456789abcdef \r\n\n\t\nold-key-0123456789abcdef\n")
                .unwrap();
        assert_eq!(ring.all().len(), 2);
        let new = KeyRing::parse(b"new-key-0123456789abcdef").unwrap();
        let old = KeyRing::parse(b"old-key-0123456789abcdef").unwrap();
        assert_eq!(ring.signing().id, new.signing().id);
        assert_eq!(ring.all()[1].id, old.signing().id);
        assert_ne!(new.signing().id, old.signing().id);
        assert!(ring.find(&old.signing().id).is_some());
        assert!(ring.find(&[0; 4]).is_none());
    }

    #[test]
    fn refusals_name_lines_never_keys() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "no key"),
            (b"\n \n", "no key"),
            (b"short-secret", "line 1 is shorter than 16"),
            (b"good-key-0123456789\n\nshort-secret", "line 3 is shorter"),
            (b"bin\x00ary-key-0123456789", "control characters"),
            (
                b"same-key-0123456789\nother-key-0123456789\nsame-key-0123456789",
                "lines 1 and 3 hold the same key",
            ),
        ];
        for (text, needle) in cases {
            let reason = KeyRing::parse(text).unwrap_err();
            assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
            assert!(!reason.contains("secret") && !reason.contains("key-0123"));
        }
        let many: Vec<u8> = (0..=MAX_KEYS)
            .flat_map(|i| format!("key-number-{i:04}-abcdef\n").into_bytes())
            .collect();
        assert!(KeyRing::parse(&many).unwrap_err().contains("at most 16"));
    }

    #[test]
    fn debug_shows_ids_only() {
        let ring = KeyRing::parse(b"debug-secret-0123456789").unwrap();
        let shown = format!("{ring:?}");
        assert!(shown.contains(&hex(&ring.signing().id)), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn sources_are_named_in_errors() {
        let missing = KeySource::File("/nonexistent/msm.key".into());
        let message = KeyRing::read(&missing).unwrap_err().to_string();
        assert!(message.contains("`integrityKey`"), "{message}");
        assert!(message.contains("file:/nonexistent/msm.key"), "{message}");
        let unset = KeySource::Env("MSM_TEST_KEY_THAT_IS_NEVER_SET".into());
        let message = KeyRing::read(&unset).unwrap_err().to_string();
        assert!(
            message.contains("env:MSM_TEST_KEY_THAT_IS_NEVER_SET"),
            "{message}"
        );
    }
}
