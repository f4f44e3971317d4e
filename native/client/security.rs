//! What a connection does before its first command: TLS (rustls with the `ring` provider, TLS
//! 1.2 and 1.3, no OpenSSL) and memcached's ASCII authentication.
//!
//! Everything is read once, when the manager starts: the certificate authorities, the client
//! certificate and key, the credentials. Secrets (the client key, the password) are named in the
//! configuration by their source (`file:<path>`, `env:<VARIABLE>`), never given there, and never
//! appear in logs, errors or debug output.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

use crate::config::{KeySource, TlsConfig};
use crate::error::{Error, Result};

/// How every connection to memcached is set up: plain or TLS, authenticated or not.
#[derive(Default)]
pub struct Security {
    tls: Option<Tls>,
    credentials: Option<Credentials>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("tls", &self.tls.is_some())
            .field("authenticated", &self.credentials.is_some())
            .finish()
    }
}

struct Tls {
    connector: TlsConnector,
    /// `tlsServerName`: the name every server's certificate must carry, instead of its host.
    server_name: Option<ServerName<'static>>,
}

/// The line memcached's ASCII authentication expects as a value: `<user> <password>`.
struct Credentials {
    line: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<hidden>)")
    }
}

impl Security {
    /// Plain connections, no authentication.
    pub fn plain() -> Arc<Self> {
        Arc::new(Security::default())
    }

    /// Reads what `tls` and `credentials` name. A refusal is a configuration error naming the
    /// attribute and the source, never a secret.
    pub fn load(tls: Option<&TlsConfig>, credentials: Option<&KeySource>) -> Result<Arc<Self>> {
        Ok(Arc::new(Security {
            tls: tls.map(load_tls).transpose()?,
            credentials: credentials.map(load_credentials).transpose()?,
        }))
    }

    /// Whether connections use TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The TLS connector and the name a server at `host` must prove, when TLS is on.
    pub(super) fn tls(&self, host: &str) -> Option<(&TlsConnector, Option<ServerName<'static>>)> {
        self.tls.as_ref().map(|tls| {
            let name = tls
                .server_name
                .clone()
                .or_else(|| ServerName::try_from(host.to_owned()).ok());
            (&tls.connector, name)
        })
    }

    /// The value to send in the authentication `set`, when credentials are configured.
    pub(super) fn credentials(&self) -> Option<&[u8]> {
        self.credentials.as_ref().map(|c| c.line.as_slice())
    }
}

/// Reads a secret from its source; errors name `attribute` and the source only.
fn read_secret(attribute: &str, source: &KeySource) -> Result<Vec<u8>> {
    match source {
        KeySource::File(path) => std::fs::read(path).map_err(|e| e.to_string()),
        KeySource::Env(var) => std::env::var(var)
            .map(String::into_bytes)
            .map_err(|e| e.to_string()),
    }
    .map_err(|reason| Error::config(attribute, &source.to_string(), reason))
}

fn load_tls(config: &TlsConfig) -> Result<Tls> {
    let refuse =
        |attribute: &str, value: &str, reason: String| Error::config(attribute, value, reason);
    let mut roots = rustls::RootCertStore::empty();
    let cas = read_certificates(&config.ca_file)
        .map_err(|reason| refuse("tlsCaFile", &config.ca_file, reason))?;
    for ca in cas {
        roots.add(ca).map_err(|e| {
            refuse(
                "tlsCaFile",
                &config.ca_file,
                format!("not a usable certificate authority: {e}"),
            )
        })?;
    }
    // Deprecated only because ring has no post-quantum key exchange; the aws-lc-rs provider,
    // which has, needs cmake and clang to cross-build the shipped libraries.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| refuse("tls", "true", e.to_string()))?
        .with_root_certificates(roots);
    let client = match (&config.client_certificate_file, &config.client_key) {
        (Some(file), Some(source)) => {
            let chain = read_certificates(file)
                .map_err(|reason| refuse("tlsClientCertificateFile", file, reason))?;
            let pem = read_secret("tlsClientKey", source)?;
            // The parser's own errors could quote the key; say only what is wrong.
            let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
                refuse(
                    "tlsClientKey",
                    &source.to_string(),
                    "no unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1) found".into(),
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                refuse(
                    "tlsClientKey",
                    &source.to_string(),
                    format!("does not go with tlsClientCertificateFile: {e}"),
                )
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    let server_name = config
        .server_name
        .as_deref()
        .map(|name| {
            ServerName::try_from(name.to_owned())
                .map_err(|e| refuse("tlsServerName", name, e.to_string()))
        })
        .transpose()?;
    Ok(Tls {
        connector: TlsConnector::from(Arc::new(client)),
        server_name,
    })
}

/// Every certificate of a PEM file; at least one.
fn read_certificates(path: &str) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))?;
    if certificates.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certificates)
}

/// `user:password` on one line, as in memcached's own authentication file.
fn load_credentials(source: &KeySource) -> Result<Credentials> {
    const NAME: &str = "memcachedCredentials";
    let refuse = |reason: &str| Error::config(NAME, &source.to_string(), reason);
    let text = read_secret(NAME, source)?;
    let text = std::str::from_utf8(&text).map_err(|_| refuse("not text"))?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let line = lines.next().ok_or_else(|| refuse("empty"))?;
    if lines.next().is_some() {
        return Err(refuse("expected one line, `user:password`"));
    }
    let (user, password) = line
        .split_once(':')
        .filter(|(u, p)| !u.is_empty() && !p.is_empty())
        .ok_or_else(|| refuse("expected `user:password`"))?;
    if line.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse(
            "user and password must not hold spaces or control characters",
        ));
    }
    Ok(Credentials {
        line: format!("{user} {password}").into_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file holding `text`, named after `tag` and this process.
    fn file(tag: &str, text: &str) -> KeySource {
        let path = std::env::temp_dir().join(format!("msm-{tag}-{}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        KeySource::File(path.display().to_string())
    }

    #[test]
    fn credentials_are_one_user_password_line_never_shown() {
        let source = file("cred-ok", "  alice:s3cret\n");
        let ok = load_credentials(&source).unwrap();
        assert_eq!(ok.line, b"alice s3cret");
        for (tag, bad) in [
            ("cred-1", "alice"),
            ("cred-2", "alice:"),
            ("cred-3", "alice:s3 cret"),
            ("cred-4", "alice:s3cret\nbob:s3cret"),
            ("cred-5", ""),
        ] {
            let source = file(tag, bad);
            let message = load_credentials(&source).unwrap_err().to_string();
            assert!(message.contains("`memcachedCredentials`"), "{message}");
            assert!(message.contains(tag), "{message}");
            assert!(!message.contains("s3"), "{message}");
        }
        let missing = KeySource::File("/nonexistent/msm.auth".into());
        let message = load_credentials(&missing).unwrap_err().to_string();
        assert!(message.contains("file:/nonexistent/msm.auth"), "{message}");
        let unset = KeySource::Env("MSM_TEST_CREDENTIALS_NEVER_SET".into());
        let message = load_credentials(&unset).unwrap_err().to_string();
        assert!(
            message.contains("env:MSM_TEST_CREDENTIALS_NEVER_SET"),
            "{message}"
        );
    }

    #[test]
    fn a_bad_ca_file_is_named() {
        let config = TlsConfig {
            ca_file: "/nonexistent/ca.pem".into(),
            server_name: None,
            client_certificate_file: None,
            client_key: None,
        };
        let message = load_tls(&config).err().unwrap().to_string();
        assert!(message.contains("`tlsCaFile`"), "{message}");
        assert!(message.contains("/nonexistent/ca.pem"), "{message}");
    }

    #[test]
    fn debug_output_tells_nothing_secret() {
        let security = Security {
            tls: None,
            credentials: Some(Credentials {
                line: b"alice s3cret".to_vec(),
            }),
        };
        let shown = format!("{security:?}");
        assert!(!shown.contains("s3cret") && shown.contains("authenticated: true"));
    }
}
