//! The validity record of a non-sticky session: when it was last accessed, how long it may stay
//! idle, and until when memcached keeps its copies.
//!
//! A request that does not touch its session rewrites only this small record instead of loading
//! the session, and a load reads it with the session in the same round trip. Memcached keeps the
//! record exactly as long as the session lives, and the session's copies a quarter longer (see
//! [`copy_lifetime`]), renewed once a quarter of the lifetime has passed; so the copies outlive
//! every session the record says is alive, and a record lost with its node leaves the copies to
//! tell.
//!
//! ```text
//! offset 0  magic "MSMV"
//!        4  format version (2)
//!        5  tag kind: 1 = CRC-32, 2 = HMAC-SHA256 (as in the envelope; never encrypted)
//!        6  key id, 4 bytes (as in the envelope; zeros with CRC-32)
//!       10  last access, ms since the Unix epoch, u64 little-endian
//!       18  max inactive, seconds, i32 little-endian
//!       22  copies expire, seconds since the Unix epoch, u64 little-endian
//!       30  tag over every byte before it, the context, a 0 byte and the id's random part
//! ```
//!
//! Format 1 (still read, never written) has no key id, so its fields start at offset 6 and its
//! tag at 26; its HMAC is keyed as the envelope's format 1.

use crate::client::expiry;
use crate::envelope::{Codec, CorruptKind, Corruption, unencrypted_tag_len};

const MAGIC: &[u8; 4] = b"MSMV";
const FORMAT_VERSION: u8 = 2;
/// Offset of the fields in format 2 (after the key id) and in format 1.
const FIELDS_AT: usize = 10;
const V1_FIELDS_AT: usize = 6;
/// Bytes of the fields: last access, max inactive, copies expire.
const FIELDS_LEN: usize = 20;
/// Bytes before the tag, in format 2.
const BODY_LEN: usize = FIELDS_AT + FIELDS_LEN;

/// The most a session's recorded last access lags behind its true last access: an access less
/// than this long after the record's last renewal does not renew it again. Memcached counts
/// expiries in whole seconds, so the record it keeps may already expire up to a second early;
/// skipping renewals within a second adds no larger error and spares a round trip to most
/// requests of an active session.
pub const RENEWAL_LAG_MS: u64 = 1000;

/// The memcached lifetime of a session's copies that lives `max_inactive` seconds: a quarter
/// longer, so that renewing them a quarter-lifetime after the last write or touch always covers
/// the session's own expiry. 0 (never expires) stays 0.
pub fn copy_lifetime(max_inactive: i32) -> u64 {
    match u64::try_from(max_inactive) {
        Ok(secs) if secs > 0 => secs + secs.div_ceil(4),
        _ => 0,
    }
}

/// Memcached's expiry field for what lives exactly as long as a session of `max_inactive`
/// seconds (its validity record, a sticky copy written by `store`).
pub fn session_exptime(max_inactive: i32) -> u64 {
    expiry(u64::try_from(max_inactive).unwrap_or(0))
}

/// Memcached's expiry field for a session's copies ([`copy_lifetime`]).
pub fn copies_exptime(max_inactive: i32) -> u64 {
    expiry(copy_lifetime(max_inactive))
}

/// What a validity record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Last access, milliseconds since the Unix epoch.
    pub last_accessed: u64,
    /// Seconds of inactivity after which the session expires; 0 or less never expires.
    pub max_inactive: i32,
    /// When memcached drops the session's copies, seconds since the Unix epoch (0: never).
    pub copies_expire: u64,
}

impl Validity {
    /// The record left by a session that ended (invalidated, or moved to another id), on its
    /// node: while that node answers, copies of it that hosts keep for outages do not bring it
    /// back.
    pub const ENDED: Validity = Validity {
        last_accessed: 0,
        max_inactive: 1,
        copies_expire: 0,
    };

    /// Whether the session expired by `now` (milliseconds since the Unix epoch); an ended
    /// session has expired.
    pub fn expired(&self, now: u64) -> bool {
        let Ok(secs) = u64::try_from(self.max_inactive) else {
            return false;
        };
        secs > 0 && now.saturating_sub(self.last_accessed) > secs * 1000
    }

    /// Whether the record, renewed at its last access, is recent enough at `now` (milliseconds
    /// since the Unix epoch) that an access now need not renew it: less than [`RENEWAL_LAG_MS`]
    /// ago, and less than a twentieth of the session's lifetime. A last access after `now` (a
    /// host whose clock runs ahead) is not recent: the record is renewed.
    pub fn renewed_lately(&self, now: u64) -> bool {
        let lag = match u64::try_from(self.max_inactive) {
            Ok(secs) if secs > 0 => RENEWAL_LAG_MS.min(secs * 1000 / 20),
            _ => RENEWAL_LAG_MS,
        };
        self.last_accessed <= now && now - self.last_accessed < lag
    }

    /// Whether the copies' expiry must be renewed at `now` (seconds since the Unix epoch): less
    /// than a whole session lifetime (and memcached's second of rounding) is left of them, so
    /// the session renewed now could outlive them.
    pub fn copies_due(&self, now: u64) -> bool {
        match u64::try_from(self.max_inactive) {
            Ok(secs) if secs > 0 => self.copies_expire.saturating_sub(now) < secs + 2,
            _ => false,
        }
    }

    /// [`Validity::copies_due`] for copies that memcached keeps `grace` seconds beyond their
    /// lifetime (distributed events): renewed as soon as less than that lifetime and grace is
    /// left, so the grace stays whole after the session's expiry.
    pub fn copies_due_within(&self, now: u64, grace: u64) -> bool {
        match u64::try_from(self.max_inactive) {
            Ok(secs) if secs > 0 => self.copies_expire.saturating_sub(now) < secs + 2 + grace,
            _ => false,
        }
    }

    /// Encodes the record of the session whose id has the random part `id`.
    pub fn encode(&self, codec: &Codec, id: &str) -> Vec<u8> {
        let integrity = codec.integrity();
        let mut out = Vec::with_capacity(BODY_LEN + 32);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.push(integrity.record_kind());
        out.extend_from_slice(&integrity.signing_id());
        out.extend_from_slice(&self.last_accessed.to_le_bytes());
        out.extend_from_slice(&self.max_inactive.to_le_bytes());
        out.extend_from_slice(&self.copies_expire.to_le_bytes());
        integrity.append_tag(&mut out, &codec.bound(id));
        out
    }

    /// Decodes and verifies a record read under the validity key of the session whose id has
    /// the random part `id`.
    pub fn decode(codec: &Codec, id: &str, value: &[u8]) -> Result<Self, Corruption> {
        let malformed = |reason: &str| {
            Corruption::new(CorruptKind::Malformed, format!("validity record: {reason}"))
        };
        if value.len() < 6 || &value[..4] != MAGIC {
            return Err(malformed("unknown magic"));
        }
        let (version, kind) = (value[4], value[5]);
        let fields_at = match version {
            1 => V1_FIELDS_AT,
            FORMAT_VERSION => FIELDS_AT,
            v if v > FORMAT_VERSION => {
                return Err(Corruption::new(
                    CorruptKind::FutureVersion,
                    format!("validity record: format version {v} is not readable by this version"),
                ));
            }
            _ => return Err(malformed("unknown format version")),
        };
        let body_len = fields_at + FIELDS_LEN;
        let tag_len = unencrypted_tag_len(kind).ok_or_else(|| malformed("unknown tag kind"))?;
        if value.len() != body_len + tag_len {
            return Err(malformed("wrong length"));
        }
        let (covered, tag) = value.split_at(body_len);
        let bound = codec.bound(id);
        // Format 1 names no key.
        let key_id: Option<[u8; 4]> =
            (version != 1).then(|| covered[6..10].try_into().expect("4 bytes"));
        let verified = codec
            .integrity()
            .verify_tag(kind, key_id.as_ref(), covered, &bound, tag);
        verified.map_err(|e| Corruption::new(e.kind, format!("validity record: {e}")))?;
        let fields = &covered[fields_at..];
        let u64_at = |at: usize| u64::from_le_bytes(fields[at..at + 8].try_into().expect("8"));
        Ok(Validity {
            last_accessed: u64_at(0),
            max_inactive: i32::from_le_bytes(fields[8..12].try_into().expect("4")),
            copies_expire: u64_at(12),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::KeyRing;
    use crate::session::now_millis;

    const ID: &str = "602F7397FBE4D9932E59A9D0E52FE178";

    fn record() -> Validity {
        Validity {
            last_accessed: 1_700_000_000_000,
            max_inactive: 1800,
            copies_expire: 1_700_002_250,
        }
    }

    const KEY: &[u8] = b"0123456789abcdef";
    const OLD_KEY: &[u8] = b"fedcba9876543210";

    fn signed(keys: &[&[u8]], context: &str) -> Codec {
        Codec::new(
            Some(KeyRing::parse(&keys.join(&b'\n')).unwrap()),
            1 << 20,
            context,
        )
    }

    #[test]
    fn round_trips_and_pins_its_layout() {
        let codec = Codec::new(None, 1 << 20, "shop:");
        let bytes = record().encode(&codec, ID);
        assert_eq!(&bytes[..10], b"MSMV\x02\x01\0\0\0\0");
        assert_eq!(bytes.len(), BODY_LEN + 4);
        assert_eq!(Validity::decode(&codec, ID, &bytes).unwrap(), record());

        // Never encrypted: an encrypting codec signs records.
        let keys = KeyRing::parse(KEY).unwrap();
        for codec in [
            signed(&[KEY], "shop:"),
            Codec::encrypted(keys, 1 << 20, "shop:"),
        ] {
            let bytes = record().encode(&codec, ID);
            assert_eq!(&bytes[..6], b"MSMV\x02\x02");
            assert_eq!(bytes[6..10], codec.integrity().signing_id());
            assert_eq!(bytes.len(), BODY_LEN + 32);
            assert_eq!(Validity::decode(&codec, ID, &bytes).unwrap(), record());
        }
    }

    #[test]
    fn refuses_flipped_bits_other_sessions_contexts_and_keys() {
        let codec = signed(&[KEY], "shop:");
        let bytes = record().encode(&codec, ID);
        for i in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[i / 8] ^= 1 << (i % 8);
            assert!(Validity::decode(&codec, ID, &flipped).is_err(), "bit {i}");
        }
        assert!(Validity::decode(&codec, "0000000000000000", &bytes).is_err());
        assert!(Validity::decode(&signed(&[KEY], "blog:"), ID, &bytes).is_err());
        let unsigned = Codec::new(None, 1 << 20, "shop:");
        let refusal = Validity::decode(&unsigned, ID, &bytes).unwrap_err();
        assert_eq!(refusal.kind, CorruptKind::UnknownKey);
        for len in 0..bytes.len() {
            assert!(Validity::decode(&codec, ID, &bytes[..len]).is_err());
        }
        let mut future = bytes.clone();
        future[4] = 3;
        let refusal = Validity::decode(&codec, ID, &future).unwrap_err();
        assert_eq!(refusal.kind, CorruptKind::FutureVersion);
    }

    #[test]
    fn keys_rotate_as_for_sessions() {
        let before = record().encode(&signed(&[OLD_KEY], "shop:"), ID);
        let rotated = signed(&[KEY, OLD_KEY], "shop:");
        assert_eq!(Validity::decode(&rotated, ID, &before).unwrap(), record());
        let after = record().encode(&rotated, ID);
        let new = signed(&[KEY], "shop:");
        assert_eq!(Validity::decode(&new, ID, &after).unwrap(), record());
        let refusal = Validity::decode(&new, ID, &before).unwrap_err();
        assert_eq!(refusal.kind, CorruptKind::UnknownKey);
    }

    /// A record as format 1 wrote it: no key id, HMAC keyed with the secret itself.
    fn format_1(key: Option<&[u8]>) -> Vec<u8> {
        use hmac::{KeyInit, Mac};
        let v = record();
        let mut out = b"MSMV\x01".to_vec();
        out.push(if key.is_some() { 2 } else { 1 });
        out.extend_from_slice(&v.last_accessed.to_le_bytes());
        out.extend_from_slice(&v.max_inactive.to_le_bytes());
        out.extend_from_slice(&v.copies_expire.to_le_bytes());
        let bound = format!("shop:\0{ID}");
        let tag = match key {
            Some(key) => {
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
                mac.update(&out);
                mac.update(bound.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            None => {
                let mut crc = crc32fast::Hasher::new();
                crc.update(&out);
                crc.update(bound.as_bytes());
                crc.finalize().to_le_bytes().to_vec()
            }
        };
        out.extend_from_slice(&tag);
        out
    }

    #[test]
    fn format_1_records_are_still_read() {
        let plain = Codec::new(None, 1 << 20, "shop:");
        assert_eq!(
            Validity::decode(&plain, ID, &format_1(None)).unwrap(),
            record()
        );
        let old = format_1(Some(OLD_KEY));
        let rotated = signed(&[KEY, OLD_KEY], "shop:");
        assert_eq!(Validity::decode(&rotated, ID, &old).unwrap(), record());
        let refusal = Validity::decode(&signed(&[KEY], "shop:"), ID, &old).unwrap_err();
        assert_eq!(refusal.kind, CorruptKind::TagMismatch);
        assert!(Validity::decode(&rotated, ID, &format_1(None)).is_err());
    }

    #[test]
    fn expiry_follows_the_last_access() {
        let v = record();
        assert!(!v.expired(v.last_accessed + 1_800_000));
        assert!(v.expired(v.last_accessed + 1_800_001));
        let forever = Validity {
            max_inactive: 0,
            ..v
        };
        assert!(!forever.expired(u64::MAX));
        assert!(Validity::ENDED.expired(now_millis()));
    }

    #[test]
    fn a_record_renewed_within_the_lag_is_not_renewed_again() {
        let v = record();
        let at = v.last_accessed;
        assert!(v.renewed_lately(at));
        assert!(v.renewed_lately(at + RENEWAL_LAG_MS - 1));
        assert!(!v.renewed_lately(at + RENEWAL_LAG_MS));
        assert!(!v.renewed_lately(at - 1), "a clock ahead renews");
        // Short lifetimes: a twentieth of it.
        let short = Validity {
            max_inactive: 4,
            ..v
        };
        assert!(short.renewed_lately(at + 199));
        assert!(!short.renewed_lately(at + 200));
        let forever = Validity {
            max_inactive: 0,
            ..v
        };
        assert!(forever.renewed_lately(at + RENEWAL_LAG_MS - 1));
        assert!(!forever.renewed_lately(at + RENEWAL_LAG_MS));
    }

    #[test]
    fn copies_are_renewed_once_a_quarter_lifetime_passed() {
        let v = record();
        let written = v.copies_expire - copy_lifetime(1800);
        assert!(!v.copies_due(written + 448));
        assert!(v.copies_due(written + 449));
        assert_eq!(copy_lifetime(1800), 2250);
        assert_eq!(copy_lifetime(1), 2);
        assert_eq!(copy_lifetime(0), 0);
        assert_eq!(copy_lifetime(-1), 0);
        let graced = Validity {
            copies_expire: v.copies_expire + 30,
            ..v
        };
        assert!(!graced.copies_due_within(written + 448, 30));
        assert!(graced.copies_due_within(written + 449, 30));
        assert_eq!(
            v.copies_due_within(written + 449, 0),
            v.copies_due(written + 449)
        );
    }
}
