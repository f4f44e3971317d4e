//! Certificates made by the tests (a certificate authority, server and client certificates it
//! signs) and memcached started with TLS (`-Z`) or ASCII authentication (`-Y`).

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::{Memcached, TempDir};

/// A certificate authority of the test's own, written as `<name>-ca.pem` in a directory.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate (PEM): the `tlsCaFile` of clients that trust it.
    pub file: PathBuf,
    dir: PathBuf,
    name: String,
}

/// A certificate and its private key, as PEM files.
pub struct Issued {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key (unencrypted).
    pub key: PathBuf,
}

impl TestCa {
    /// A new authority named `name`, its files in `dir`.
    pub fn new(dir: &TempDir, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("msm test CA {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let file = dir.path.join(format!("{name}-ca.pem"));
        std::fs::write(&file, cert.pem()).unwrap();
        TestCa {
            issuer: Issuer::new(params, key),
            file,
            dir: dir.path.clone(),
            name: name.to_owned(),
        }
    }

    fn issue(&self, what: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Issued {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("msm test {what}"));
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_path = self.dir.join(format!("{}-{what}.pem", self.name));
        let key_path = self.dir.join(format!("{}-{what}.key", self.name));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Issued {
            cert: cert_path,
            key: key_path,
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Issued {
        self.issue(
            &format!("server-{}", names.join("_")),
            names,
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate.
    pub fn client(&self, name: &str) -> Issued {
        self.issue(
            &format!("client-{name}"),
            &[name],
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }
}

/// memcached's `-o` options serving TLS with `server`'s certificate.
fn tls_options(server: &Issued) -> String {
    format!(
        "ssl_chain_cert={},ssl_key={}",
        server.cert.display(),
        server.key.display()
    )
}

/// memcached's auth file in `dir` holding `user:password`, as an argument of `-Y`.
fn auth_file(dir: &TempDir, user: &str, password: &str) -> String {
    let file = dir.path.join(format!("memcached-{user}.auth"));
    std::fs::write(&file, format!("{user}:{password}\n")).unwrap();
    file.display().to_string()
}

/// memcached serving TLS only, with `server`'s certificate; with `clients_of`, it requires
/// client certificates signed by that authority.
pub fn tls_memcached(server: &Issued, clients_of: Option<&TestCa>) -> Memcached {
    let mut options = tls_options(server);
    if let Some(ca) = clients_of {
        options.push_str(&format!(
            ",ssl_verify_mode=2,ssl_ca_cert={}",
            ca.file.display()
        ));
    }
    Memcached::start_with(&["-Z", "-o", &options])
}

/// memcached requiring ASCII authentication with `user:password` (a file in `dir`).
pub fn authenticated_memcached(dir: &TempDir, user: &str, password: &str) -> Memcached {
    Memcached::start_with(&["-Y", &auth_file(dir, user, password)])
}

/// memcached serving TLS only with `server`'s certificate and requiring ASCII authentication
/// with `user:password` (a file in `dir`).
pub fn secure_memcached(dir: &TempDir, server: &Issued, user: &str, password: &str) -> Memcached {
    let (options, auth) = (tls_options(server), auth_file(dir, user, password));
    Memcached::start_with(&["-Z", "-o", &options, "-Y", &auth])
}

/// A `memcachedCredentials` file in `dir` holding `user:password`, and the value naming it.
pub fn credentials_file(dir: &TempDir, user: &str, password: &str) -> String {
    let file = dir.path.join(format!("msm-{user}.credentials"));
    std::fs::write(&file, format!("{user}:{password}\n")).unwrap();
    format!("file:{}", file.display())
}
