//! A listener's `tls:` block, loaded: certificate chains and keys read and
//! checked at `--check` (and at start and on SIGHUP, so a reload reads the
//! files again and new handshakes use the new certificates while open
//! connections keep theirs), the certificate chosen by SNI, the rustls
//! server configuration.
//!
//! Owns: reading PEM files (PKCS#8, RSA and EC keys), the checks and their
//! messages (missing file with the path as written and the path tried, a
//! key that does not match its certificate, an expired certificate as a
//! warning), [`SniCerts`] (exact name, then `*.` wildcard of one label,
//! else the default `cert`), versions, ALPN and client certificates.
//! Does not own the YAML (`config/validate/tls.rs`) or connections
//! (`session.rs`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

use super::x509;

/// A file named in the configuration: as written, and where it was looked
/// for (relative names start in the configuration file's folder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRef {
    pub written: String,
    pub path: PathBuf,
}

impl FileRef {
    pub fn new(written: &str, base: &Path) -> FileRef {
        FileRef {
            written: written.to_string(),
            path: base.join(written),
        }
    }

    fn read(&self, what: &str) -> Result<Vec<u8>, String> {
        std::fs::read(&self.path).map_err(|e| {
            if self.path == Path::new(&self.written) {
                format!("cannot read {what} {:?}: {e}", self.written)
            } else {
                format!(
                    "cannot read {what} {:?} (tried {}): {e}",
                    self.written,
                    self.path.display()
                )
            }
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// Ask for a certificate; a client without one is let in.
    Request,
    /// A client without a valid certificate fails the handshake.
    Require,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinVersion {
    Tls12,
    Tls13,
}

/// The `tls:` block with its paths resolved, before any file is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    /// The default certificate (`cert`, `key`), then `certificates:`.
    pub pairs: Vec<(FileRef, FileRef)>,
    pub client_auth: ClientAuth,
    pub client_ca: Option<FileRef>,
    pub min_version: MinVersion,
    pub alpn: Vec<String>,
}

/// A problem with one key of the block: `key` is the YAML path below
/// `tls` (`cert`, `certificates[1].key`, `client_ca`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

/// A loaded `tls:` block. Two are equal when they were loaded from the
/// same settings and the same file contents.
#[derive(Clone)]
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    spec: ServerSpec,
    contents: Vec<Vec<u8>>,
}

impl ServerTls {
    /// A session for a new client connection.
    pub fn session(&self) -> Result<super::TlsSession, rustls::Error> {
        super::TlsSession::server(Arc::clone(&self.config))
    }
}

impl PartialEq for ServerTls {
    fn eq(&self, other: &ServerTls) -> bool {
        self.spec == other.spec && self.contents == other.contents
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// The one crypto provider nvelox uses (ring: plain C and assembly, so the
/// static musl and aarch64 builds need no cmake or extra toolchain).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain.
pub fn read_chain(file: &FileRef) -> Result<(Vec<CertificateDer<'static>>, Vec<u8>), String> {
    let pem = file.read("certificate file")?;
    let chain: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    match chain {
        Ok(c) if !c.is_empty() => Ok((c, pem)),
        Ok(_) => Err(format!("no PEM certificate in {:?}", file.written)),
        Err(e) => Err(format!("bad PEM certificate in {:?}: {e}", file.written)),
    }
}

/// Reads a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn read_key(file: &FileRef) -> Result<(PrivateKeyDer<'static>, Vec<u8>), String> {
    let pem = file.read("key file")?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(k) => Ok((k, pem)),
        Err(e) => Err(format!(
            "no usable PEM private key (PKCS#8, RSA or EC) in {:?}: {e}",
            file.written
        )),
    }
}

/// Loads a chain and its key and checks they belong together; warns
/// (into `warnings`) when the certificate has expired. `Err((on_cert, why))`.
pub fn certified_key_parts(
    cert: &FileRef,
    key: &FileRef,
    warnings: &mut Vec<String>,
    contents: &mut Vec<Vec<u8>>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), (bool, String)> {
    let (ck, der, names) = checked(cert, key, warnings, contents)?;
    let _ = names;
    Ok((ck.cert.clone(), der))
}

/// [`certified_key_parts`] as rustls' signing form, with the
/// certificate's DNS names.
pub fn certified_key(
    cert: &FileRef,
    key: &FileRef,
    warnings: &mut Vec<String>,
    contents: &mut Vec<Vec<u8>>,
) -> Result<(Arc<CertifiedKey>, Vec<String>), (bool, String)> {
    let (ck, _, names) = checked(cert, key, warnings, contents)?;
    Ok((Arc::new(ck), names))
}

type Checked = (CertifiedKey, PrivateKeyDer<'static>, Vec<String>);

fn checked(
    cert: &FileRef,
    key: &FileRef,
    warnings: &mut Vec<String>,
    contents: &mut Vec<Vec<u8>>,
) -> Result<Checked, (bool, String)> {
    let (chain, cert_pem) = read_chain(cert).map_err(|e| (true, e))?;
    let (der, key_pem) = read_key(key).map_err(|e| (false, e))?;
    let signer = provider()
        .key_provider
        .load_private_key(der.clone_key())
        .map_err(|e| (false, format!("unusable key in {:?}: {e}", key.written)))?;
    let ck = CertifiedKey::new(chain, signer);
    if let Err(e) = ck.keys_match() {
        return Err((
            false,
            format!(
                "key {:?} does not match certificate {:?} ({e})",
                key.written, cert.written
            ),
        ));
    }
    let facts = x509::facts(&ck.cert[0]);
    let names = facts
        .as_ref()
        .map(|f| f.dns_names.clone())
        .unwrap_or_default();
    if let Some(f) = &facts {
        if f.not_after < now_unix() {
            warnings.push(format!("certificate {:?} has expired", cert.written));
        }
    }
    contents.push(cert_pem);
    contents.push(key_pem);
    Ok((ck, der, names))
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Loads every file of `spec` and builds the rustls configuration.
/// Returns the loaded block and its warnings, or every problem found.
pub fn load(spec: &ServerSpec) -> Result<(ServerTls, Vec<Problem>), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut contents = Vec::new();
    let mut certs = SniCerts::default();
    for (i, (cert, key)) in spec.pairs.iter().enumerate() {
        let at = if i == 0 {
            String::new()
        } else {
            format!("certificates[{}].", i - 1)
        };
        let mut warn = Vec::new();
        match certified_key(cert, key, &mut warn, &mut contents) {
            Ok((ck, names)) => certs.add(ck, &names),
            Err((on_cert, message)) => problems.push(Problem {
                key: format!("{at}{}", if on_cert { "cert" } else { "key" }),
                message,
            }),
        }
        warnings.extend(warn.into_iter().map(|message| Problem {
            key: format!("{at}cert"),
            message,
        }));
    }
    let provider = provider();
    let verifier = match (spec.client_auth, &spec.client_ca) {
        (ClientAuth::None, _) => None,
        (_, None) => {
            problems.push(Problem {
                key: "client_auth".into(),
                message: "client_auth request or require needs client_ca (the CA certificates clients are checked against)".into(),
            });
            None
        }
        (auth, Some(ca)) => match roots(ca) {
            Ok((roots, pem)) => {
                contents.push(pem);
                let b = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(&provider),
                );
                let b = if auth == ClientAuth::Request {
                    b.allow_unauthenticated()
                } else {
                    b
                };
                match b.build() {
                    Ok(v) => Some(v),
                    Err(e) => {
                        problems.push(Problem {
                            key: "client_ca".into(),
                            message: format!("unusable client_ca {:?}: {e}", ca.written),
                        });
                        None
                    }
                }
            }
            Err(message) => {
                problems.push(Problem {
                    key: "client_ca".into(),
                    message,
                });
                None
            }
        },
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let versions: &[&rustls::SupportedProtocolVersion] = match spec.min_version {
        MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder =
        match ServerConfig::builder_with_provider(provider).with_protocol_versions(versions) {
            Ok(b) => b,
            Err(e) => {
                return Err(vec![Problem {
                    key: "min_version".into(),
                    message: e.to_string(),
                }])
            }
        };
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(certs));
    config.alpn_protocols = spec.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let tls = ServerTls {
        config: Arc::new(config),
        spec: spec.clone(),
        contents,
    };
    Ok((tls, warnings))
}

/// Reads CA certificates into a root store.
pub fn roots(ca: &FileRef) -> Result<(RootCertStore, Vec<u8>), String> {
    let (chain, pem) = read_chain(ca)?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(chain);
    if added == 0 {
        return Err(format!("no usable CA certificate in {:?}", ca.written));
    }
    Ok((roots, pem))
}

/// Certificates chosen by the ClientHello's server name: an exact name of
/// a certificate's subjectAltName, then a `*.` wildcard covering the first
/// label, else the default (the block's `cert`). The first certificate
/// that names a host wins.
#[derive(Debug, Default)]
pub struct SniCerts {
    default: Option<Arc<CertifiedKey>>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl SniCerts {
    pub fn add(&mut self, ck: Arc<CertifiedKey>, names: &[String]) {
        if self.default.is_none() {
            self.default = Some(Arc::clone(&ck));
        }
        for n in names {
            let n = n.trim_end_matches('.').to_ascii_lowercase();
            let (map, key) = match n.strip_prefix("*.") {
                Some(rest) => (&mut self.wildcard, rest.to_string()),
                None => (&mut self.exact, n),
            };
            map.entry(key).or_insert_with(|| Arc::clone(&ck));
        }
    }

    /// The certificate for `name` (`None`: no SNI).
    pub fn choose(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let chosen = name.and_then(|n| {
            let n = n.trim_end_matches('.').to_ascii_lowercase();
            self.exact.get(&n).or_else(|| {
                n.split_once('.')
                    .and_then(|(_, parent)| self.wildcard.get(parent))
            })
        });
        chosen.or(self.default.as_ref()).cloned()
    }
}

impl ResolvesServerCert for SniCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.server_name())
    }
}
