//! Session ids: `<random>-<nodeId>[.<jvmRoute>]`.
//!
//! Ids arrive from cookies and URLs, so parsing is strict: anything outside the grammar is "no
//! session" and can never become part of a memcached key.

pub(crate) mod reservation;

use std::fmt;

/// Length in characters of the random part of a generated id (128 bits in hex).
pub const RANDOM_LEN: usize = 32;

/// A parsed, well-formed session id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionId {
    random: String,
    node: String,
    route: Option<String>,
}

/// Where the random part of new ids comes from. The default is the operating system's CSPRNG;
/// tests substitute a fixed sequence to force collisions.
pub trait RandomSource: Send + Sync {
    /// Returns a fresh random part: upper-case hex, 16 to 64 characters.
    fn random_part(&self) -> String;
}

/// The operating system's CSPRNG (`getrandom`).
#[derive(Debug, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn random_part(&self) -> String {
        let mut bytes = [0u8; RANDOM_LEN / 2];
        // The OS generator failing is not recoverable: continuing would hand out guessable ids.
        getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
        upper_hex(&bytes)
    }
}

/// Upper-case hexadecimal rendering of bytes.
pub(crate) fn upper_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// True for a valid node id or jvmRoute: `[A-Za-z0-9_]{1,32}`.
pub fn is_valid_name(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_valid_random(s: &str) -> bool {
    (16..=64).contains(&s.len()) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
}

impl SessionId {
    /// Builds an id from its parts; `None` when any part is outside the grammar.
    pub fn new(random: &str, node: &str, route: Option<&str>) -> Option<Self> {
        let route_ok = route.is_none_or(is_valid_name);
        (is_valid_random(random) && is_valid_name(node) && route_ok).then(|| SessionId {
            random: random.to_owned(),
            node: node.to_owned(),
            route: route.map(str::to_owned),
        })
    }

    /// Parses an id from untrusted input; `None` for anything that is not exactly the grammar.
    pub fn parse(input: &str) -> Option<Self> {
        let (random, rest) = input.split_once('-')?;
        let (node, route) = match rest.split_once('.') {
            Some((node, route)) => (node, Some(route)),
            None => (rest, None),
        };
        Self::new(random, node, route)
    }

    /// The random part.
    pub fn random(&self) -> &str {
        &self.random
    }

    /// The memcached node the session was stored on.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Tomcat's jvmRoute, when the id carries one.
    pub fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }

    /// The id moved to another memcached node (relocation after a node failure).
    pub fn with_node(&self, node: &str) -> Self {
        debug_assert!(is_valid_name(node));
        SessionId {
            node: node.to_owned(),
            ..self.clone()
        }
    }

    /// The id taken over by another Tomcat (its route), or stripped of any route.
    pub fn with_route(&self, route: Option<&str>) -> Option<Self> {
        Self::new(&self.random, &self.node, route)
    }

    /// A short form for logs: ids are login tokens, so logs carry only the first six characters
    /// of the random part (24 of 128 bits) and the node.
    pub fn redacted(&self) -> String {
        format!("{}…-{}", &self.random[..6], self.node)
    }

    /// Whether `raw` is this id's text, compared without building it.
    pub fn matches(&self, raw: &str) -> bool {
        let Some(rest) = raw.strip_prefix(self.random.as_str()) else {
            return false;
        };
        let Some(rest) = rest
            .strip_prefix('-')
            .and_then(|r| r.strip_prefix(self.node.as_str()))
        else {
            return false;
        };
        match &self.route {
            Some(route) => rest.strip_prefix('.') == Some(route.as_str()),
            None => rest.is_empty(),
        }
    }

    /// The part that names the stored session: the id without its route, which changes on
    /// Tomcat failover while the stored session stays the same.
    pub fn storage_part(&self) -> String {
        let mut part = String::with_capacity(self.storage_part_len());
        self.push_storage_part(&mut part);
        part
    }

    /// Bytes of [`SessionId::storage_part`].
    pub fn storage_part_len(&self) -> usize {
        self.random.len() + 1 + self.node.len()
    }

    /// Appends [`SessionId::storage_part`] to `out`, for keys built without a string of it
    /// first (every request builds several).
    pub fn push_storage_part(&self, out: &mut String) {
        out.push_str(&self.random);
        out.push('-');
        out.push_str(&self.node);
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.random, self.node)?;
        if let Some(route) = &self.route {
            write!(f, ".{route}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "602F7397FBE4D9932E59A9D0E52FE178";

    #[test]
    fn parses_the_documented_forms() {
        let id = SessionId::parse(&format!("{R}-n1")).unwrap();
        assert_eq!((id.random(), id.node(), id.route()), (R, "n1", None));
        let id = SessionId::parse(&format!("{R}-n1.tomcat0")).unwrap();
        assert_eq!(id.route(), Some("tomcat0"));
        assert_eq!(id.to_string(), format!("{R}-n1.tomcat0"));
        assert_eq!(id.storage_part(), format!("{R}-n1"));
    }

    #[test]
    fn rejects_everything_outside_the_grammar() {
        let long = "A".repeat(300);
        let hostile = [
            String::new(),
            "-".into(),
            R.into(),
            format!("{R}-"),
            format!("{R}-n1."),
            format!("{R}-n1.a.b"),
            format!("{R}-n 1"),
            format!("{R}-n1\r\nflush_all"),
            format!("{}-n1", R.to_lowercase()),
            format!("{}-n1", &R[..15]),
            format!("{long}-n1"),
            format!("{R}-{}", "n".repeat(33)),
            format!("{R}-nö"),
            format!("{R}-n1.route\0"),
            format!(" {R}-n1"),
        ];
        for input in &hostile {
            assert_eq!(SessionId::parse(input), None, "accepted {input:?}");
        }
    }

    #[test]
    fn os_random_is_upper_hex_of_128_bits_and_varies() {
        let a = OsRandom.random_part();
        let b = OsRandom.random_part();
        assert_eq!(a.len(), RANDOM_LEN);
        assert!(is_valid_random(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn rewrites_node_and_route() {
        let id = SessionId::parse(&format!("{R}-n1.a")).unwrap();
        assert_eq!(id.with_node("n2").to_string(), format!("{R}-n2.a"));
        assert_eq!(
            id.with_route(Some("b")).unwrap().to_string(),
            format!("{R}-n1.b")
        );
        assert_eq!(id.with_route(None).unwrap().to_string(), format!("{R}-n1"));
        assert_eq!(id.with_route(Some("x y")), None);
        assert_eq!(id.redacted(), "602F73…-n1");
    }
}
