//! Memcached keys for a session.
//!
//! Every key starts with a per-context prefix, so two webapps (or two hosts) sharing one memcached
//! never read each other's sessions. Keys are built only from a parsed [`SessionId`] and a
//! validated prefix, so they cannot carry whitespace or control bytes and stay far below
//! memcached's 250-byte limit.

use sha2::{Digest, Sha256};

use crate::ids::{SessionId, upper_hex};

/// Longest accepted `storageKeyPrefix`.
pub const MAX_PREFIX_LEN: usize = 64;

/// The kinds of record: kept per session, except [`KeyKind::NodeList`], kept once per context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// The session itself, on its primary node.
    Session,
    /// The second copy of a non-sticky session, on the node after its own.
    SecondCopy,
    /// The lock of a session, for non-sticky locking.
    Lock,
    /// The small validity record (last access, max inactive).
    Validity,
    /// The cluster-wide reservation of a generated id.
    IdReservation,
    /// The context's shared node list (one per context, on every node; see
    /// [`KeyScheme::context_key`]).
    NodeList,
    /// Distributed events: the mark that a session ended and its end was dealt with (delivered
    /// as expired, invalidated, or expired by its host), kept on its node.
    Ended,
    /// Distributed events: the ids of the sessions whose expiry falls into one time bucket, one
    /// item per bucket on each node (see [`KeyScheme::bucket_key`]).
    ExpiryIndex,
    /// Distributed events: a sweeper's claim on one bucket of one node, then the mark that the
    /// bucket was swept.
    SweepClaim,
    /// Broadcast events: the events published in one second, one item per second on the node
    /// that holds the context's log (see [`crate::broadcast`]).
    Broadcast,
}

impl KeyKind {
    fn tag(self) -> &'static str {
        match self {
            KeyKind::Session => "",
            // Named before the second copy had its name; kept so stored sessions stay readable.
            KeyKind::SecondCopy => "bak:",
            KeyKind::Lock => "lock:",
            KeyKind::Validity => "validity:",
            KeyKind::IdReservation => "id:",
            KeyKind::NodeList => "nodes:",
            KeyKind::Ended => "ended:",
            KeyKind::ExpiryIndex => "expiring:",
            KeyKind::SweepClaim => "sweep:",
            KeyKind::Broadcast => "broadcast:",
        }
    }
}

/// Builds the keys of one context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyScheme {
    prefix: String,
}

/// True when `prefix` may start memcached keys: `[A-Za-z0-9_.:-]{0,64}`.
pub fn is_valid_prefix(prefix: &str) -> bool {
    prefix.len() <= MAX_PREFIX_LEN
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

impl KeyScheme {
    /// A scheme with an explicit prefix, already validated by the configuration parser.
    pub fn with_prefix(prefix: &str) -> Self {
        debug_assert!(is_valid_prefix(prefix));
        KeyScheme {
            prefix: prefix.to_owned(),
        }
    }

    /// The default scheme of a context: a short hash of host and context name, so the prefix is
    /// stable across restarts and distinct between webapps.
    pub fn for_context(host: &str, context: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(host.as_bytes())
            .chain_update([0u8])
            .chain_update(context.as_bytes())
            .finalize();
        KeyScheme {
            prefix: format!("{}:", upper_hex(&digest[..6])),
        }
    }

    /// The prefix in use.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of one record of a session.
    pub fn key(&self, kind: KeyKind, id: &SessionId) -> String {
        let tag = kind.tag();
        let mut key = String::with_capacity(tag.len() + self.prefix.len() + id.storage_part_len());
        key.push_str(tag);
        key.push_str(&self.prefix);
        id.push_storage_part(&mut key);
        key
    }

    /// The key of the item holding the version `version` of the attribute `name` of a session
    /// stored attribute by attribute, beside the session's own copy (`copy`:
    /// [`KeyKind::Session`] or [`KeyKind::SecondCopy`]). The name is hashed, so any name makes
    /// a valid key; each version has a key of its own (see [`crate::envelope::Index`]).
    pub fn attribute_key(&self, copy: KeyKind, id: &SessionId, name: &str, version: u64) -> String {
        let digest = Sha256::digest(name.as_bytes());
        format!(
            "{}attr:{}{}:{}:{version:016X}",
            copy.tag(),
            self.prefix,
            id.storage_part(),
            upper_hex(&digest[..16])
        )
    }

    /// The key of a record kept per context and time bucket (`expiring:P<bucket>`,
    /// `sweep:P<bucket>`, `bucket` counted in sweep intervals since the Unix epoch;
    /// `broadcast:P<second>`).
    pub fn bucket_key(&self, kind: KeyKind, bucket: u64) -> String {
        format!("{}{}{bucket}", kind.tag(), self.prefix)
    }

    /// The key of a record kept once per context rather than per session: `nodes:P` for the
    /// shared node list.
    pub fn context_key(&self, kind: KeyKind) -> String {
        format!("{}{}", kind.tag(), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SessionId {
        SessionId::parse(s).unwrap()
    }

    #[test]
    fn keys_strip_the_route_and_carry_the_prefix() {
        let keys = KeyScheme::with_prefix("shop:");
        let a = id("602F7397FBE4D9932E59A9D0E52FE178-n1.tomcat1");
        let b = id("602F7397FBE4D9932E59A9D0E52FE178-n1.tomcat2");
        assert_eq!(
            keys.key(KeyKind::Session, &a),
            "shop:602F7397FBE4D9932E59A9D0E52FE178-n1"
        );
        assert_eq!(
            keys.key(KeyKind::Session, &a),
            keys.key(KeyKind::Session, &b)
        );
        assert_eq!(
            keys.key(KeyKind::SecondCopy, &a),
            "bak:shop:602F7397FBE4D9932E59A9D0E52FE178-n1"
        );
        assert!(keys.key(KeyKind::Lock, &a).starts_with("lock:shop:"));
        assert!(
            keys.key(KeyKind::Validity, &a)
                .starts_with("validity:shop:")
        );
        assert!(keys.key(KeyKind::IdReservation, &a).starts_with("id:shop:"));
        assert_eq!(keys.context_key(KeyKind::NodeList), "nodes:shop:");
        assert!(keys.key(KeyKind::Ended, &a).starts_with("ended:shop:"));
        assert_eq!(
            keys.bucket_key(KeyKind::ExpiryIndex, 29_000_000),
            "expiring:shop:29000000"
        );
        assert_eq!(keys.bucket_key(KeyKind::SweepClaim, 7), "sweep:shop:7");
    }

    #[test]
    fn contexts_get_distinct_stable_prefixes() {
        let a = KeyScheme::for_context("localhost", "/shop");
        let b = KeyScheme::for_context("localhost", "/blog");
        let c = KeyScheme::for_context("localhost/", "shop");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, KeyScheme::for_context("localhost", "/shop"));
        assert!(is_valid_prefix(a.prefix()));
    }

    #[test]
    fn longest_key_fits_memcached() {
        let keys = KeyScheme::with_prefix(&"p".repeat(MAX_PREFIX_LEN));
        let longest = id(&format!("{}-{}", "A".repeat(64), "n".repeat(32)));
        assert!(keys.key(KeyKind::Validity, &longest).len() <= 250);
        let attribute =
            keys.attribute_key(KeyKind::SecondCopy, &longest, &"x".repeat(10_000), u64::MAX);
        assert!(attribute.len() <= 250, "{}", attribute.len());
    }

    #[test]
    fn attribute_keys_hash_any_name_per_copy() {
        let keys = KeyScheme::with_prefix("shop:");
        let a = id("602F7397FBE4D9932E59A9D0E52FE178-n1.tomcat1");
        let cart = keys.attribute_key(KeyKind::Session, &a, "cart", 7);
        assert!(cart.starts_with("attr:shop:602F7397FBE4D9932E59A9D0E52FE178-n1:"));
        assert!(cart.ends_with(":0000000000000007"), "{cart}");
        assert!(!cart.contains(char::is_whitespace));
        assert_ne!(cart, keys.attribute_key(KeyKind::Session, &a, "user", 7));
        assert_ne!(cart, keys.attribute_key(KeyKind::Session, &a, "cart", 8));
        assert_eq!(
            keys.attribute_key(KeyKind::SecondCopy, &a, "cart", 7),
            format!("bak:{cart}")
        );
        assert!(
            !keys
                .attribute_key(KeyKind::Session, &a, "a b\r\n", 0)
                .contains(' ')
        );
    }

    #[test]
    fn prefix_grammar() {
        assert!(is_valid_prefix(""));
        assert!(is_valid_prefix("app-1.prod:"));
        assert!(!is_valid_prefix("a b"));
        assert!(!is_valid_prefix("a\r\n"));
        assert!(!is_valid_prefix(&"p".repeat(65)));
    }
}
