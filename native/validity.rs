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
//!        4  format version (1)
//!        5  tag kind (as in the envelope)
//!        6  last access, ms since the Unix epoch, u64 little-endian
//!       14  max inactive, seconds, i32 little-endian
//!       18  copies expire, seconds since the Unix epoch, u64 little-endian
//!       26  tag over every byte before it, the context and the id's random part
//! ```

use crate::envelope::Codec;
use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"MSMV";
const FORMAT_VERSION: u8 = 1;
const BODY_LEN: usize = 26;

/// The memcached lifetime of a session's copies that lives `max_inactive` seconds: a quarter
/// longer, so that renewing them a quarter-lifetime after the last write or touch always covers
/// the session's own expiry. 0 (never expires) stays 0.
pub fn copy_lifetime(max_inactive: i32) -> u64 {
    match u64::try_from(max_inactive) {
        Ok(secs) if secs > 0 => secs + secs.div_ceil(4),
        _ => 0,
    }
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
    /// The record left by a session that ended (invalidated, or moved to another id): copies of
    /// it that hosts keep for outages must not bring it back.
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

    /// Whether the copies' expiry must be renewed at `now` (seconds since the Unix epoch): less
    /// than a whole session lifetime (and memcached's second of rounding) is left of them, so
    /// the session renewed now could outlive them.
    pub fn copies_due(&self, now: u64) -> bool {
        match u64::try_from(self.max_inactive) {
            Ok(secs) if secs > 0 => self.copies_expire.saturating_sub(now) < secs + 2,
            _ => false,
        }
    }

    /// Encodes the record of the session whose id has the random part `id`.
    pub fn encode(&self, codec: &Codec, id: &str) -> Vec<u8> {
        let (kind, tag_len) = codec.tag_kind();
        let mut out = Vec::with_capacity(BODY_LEN + tag_len);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.push(kind);
        out.extend_from_slice(&self.last_accessed.to_le_bytes());
        out.extend_from_slice(&self.max_inactive.to_le_bytes());
        out.extend_from_slice(&self.copies_expire.to_le_bytes());
        codec.append_tag(&mut out, &bound(codec, id));
        out
    }

    /// Decodes and verifies a record read under the validity key of the session whose id has
    /// the random part `id`.
    pub fn decode(codec: &Codec, id: &str, value: &[u8]) -> Result<Self> {
        let corrupt = |reason: &str| Error::Corrupt(format!("validity record: {reason}"));
        let (kind, tag_len) = codec.tag_kind();
        if value.len() != BODY_LEN + tag_len {
            return Err(corrupt("wrong length"));
        }
        if &value[..4] != MAGIC || value[4] != FORMAT_VERSION || value[5] != kind {
            return Err(corrupt("unknown magic, version or tag kind"));
        }
        let (covered, tag) = value.split_at(BODY_LEN);
        if !codec.verify_tag(covered, &bound(codec, id), tag) {
            return Err(corrupt("integrity tag mismatch"));
        }
        let u64_at = |at: usize| u64::from_le_bytes(covered[at..at + 8].try_into().expect("8"));
        Ok(Validity {
            last_accessed: u64_at(6),
            max_inactive: i32::from_le_bytes(covered[14..18].try_into().expect("4")),
            copies_expire: u64_at(18),
        })
    }
}

/// What a record belongs to: its context and session, covered by the tag but not stored.
fn bound(codec: &Codec, id: &str) -> Vec<u8> {
    [codec.context().as_bytes(), b"\0", id.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::now_millis;

    const ID: &str = "602F7397FBE4D9932E59A9D0E52FE178";

    fn record() -> Validity {
        Validity {
            last_accessed: 1_700_000_000_000,
            max_inactive: 1800,
            copies_expire: 1_700_002_250,
        }
    }

    #[test]
    fn round_trips_and_pins_its_layout() {
        let codec = Codec::new(None, 1 << 20, "shop:");
        let bytes = record().encode(&codec, ID);
        assert_eq!(&bytes[..6], b"MSMV\x01\x01");
        assert_eq!(bytes.len(), BODY_LEN + 4);
        assert_eq!(Validity::decode(&codec, ID, &bytes).unwrap(), record());
    }

    #[test]
    fn refuses_flipped_bits_other_sessions_contexts_and_keys() {
        let codec = Codec::new(Some(b"0123456789abcdef"), 1 << 20, "shop:");
        let bytes = record().encode(&codec, ID);
        for i in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[i / 8] ^= 1 << (i % 8);
            assert!(Validity::decode(&codec, ID, &flipped).is_err(), "bit {i}");
        }
        assert!(Validity::decode(&codec, "0000000000000000", &bytes).is_err());
        let other_context = Codec::new(Some(b"0123456789abcdef"), 1 << 20, "blog:");
        assert!(Validity::decode(&other_context, ID, &bytes).is_err());
        let unsigned = Codec::new(None, 1 << 20, "shop:");
        assert!(Validity::decode(&unsigned, ID, &bytes).is_err());
        assert!(Validity::decode(&codec, ID, &bytes[..10]).is_err());
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
    fn copies_are_renewed_once_a_quarter_lifetime_passed() {
        let v = record();
        let written = v.copies_expire - copy_lifetime(1800);
        assert!(!v.copies_due(written + 448));
        assert!(v.copies_due(written + 449));
        assert_eq!(copy_lifetime(1800), 2250);
        assert_eq!(copy_lifetime(1), 2);
        assert_eq!(copy_lifetime(0), 0);
        assert_eq!(copy_lifetime(-1), 0);
    }
}
