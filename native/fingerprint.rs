//! What a session looked like when it was last written or read, reduced to hashes, so that the
//! end of a request tells whether the request changed it without comparing bytes.

use xxhash_rust::xxh3::xxh3_64;

use crate::session::SessionData;

/// What the host's session looks like, reduced to hashes: one per attribute (name and value),
/// and one for the metadata that is stored (lifetime, authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    attributes: Vec<(u64, u64)>,
    metadata: u64,
}

impl Fingerprint {
    /// The fingerprint of a session's stored content (last access and version excluded).
    pub fn of(session: &SessionData) -> Self {
        let mut metadata = Vec::with_capacity(64);
        metadata.extend_from_slice(&session.max_inactive.to_le_bytes());
        for part in [&session.auth_type, &session.principal] {
            match part {
                Some(s) => {
                    metadata.push(1);
                    metadata.extend_from_slice(&(s.len() as u64).to_le_bytes());
                    metadata.extend_from_slice(s.as_bytes());
                }
                None => metadata.push(0),
            }
        }
        Fingerprint {
            attributes: session
                .attributes
                .iter()
                .map(|(name, value)| (xxh3_64(name.as_bytes()), xxh3_64(value)))
                .collect(),
            metadata: xxh3_64(&metadata),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A session holding `attributes`.
    pub(crate) fn session(attributes: &[(&str, &[u8])]) -> SessionData {
        let mut s = SessionData::new(1800);
        for (k, v) in attributes {
            s.attributes.insert((*k).into(), v.to_vec());
        }
        s
    }

    #[test]
    fn only_stored_content_counts_as_change() {
        let a = session(&[("user", b"alice"), ("cart", b"1")]);
        let mut touched = a.clone();
        touched.last_accessed += 5000;
        touched.version += 3;
        assert_eq!(Fingerprint::of(&a), Fingerprint::of(&touched));

        let mut changed = a.clone();
        changed.attributes.insert("cart".into(), b"2".to_vec());
        assert_ne!(Fingerprint::of(&a), Fingerprint::of(&changed));

        let mut removed = a.clone();
        removed.attributes.remove("cart");
        assert_ne!(Fingerprint::of(&a), Fingerprint::of(&removed));

        let mut logged_in = a.clone();
        logged_in.principal = Some("alice".into());
        assert_ne!(Fingerprint::of(&a), Fingerprint::of(&logged_in));
    }
}
