//! A backend's `backend_tls:` block, loaded: nvelox as a TLS client to its
//! servers.
//!
//! Owns: the trust anchors (`ca_cert`, or the system bundle at
//! [`SYSTEM_CA_BUNDLE`] when none is given: no extra dependency and the
//! operator's OS updates it), the name sent as SNI and verified
//! (`server_name`, else the server's host name as written, else its IP
//! address, which is verified and sent as no SNI), the optional client
//! certificate, and `insecure: true` (no verification, only when asked,
//! with a warning). Does not own connections (`session.rs`) or the YAML
//! (`config/validate/tls.rs`).

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::config::ServerPlan;

use super::server::{certified_key_parts, provider, roots, FileRef, Problem};

/// Debian's and most distributions' CA bundle (package ca-certificates).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The `backend_tls:` block with its paths resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSpec {
    /// `None`: the system bundle.
    pub ca_cert: Option<FileRef>,
    pub insecure: bool,
    pub server_name: Option<String>,
    pub client_cert: Option<(FileRef, FileRef)>,
}

/// A loaded `backend_tls:` block. Equal when loaded from the same
/// settings and file contents (a reload keeps an unchanged backend).
#[derive(Clone)]
pub struct ClientTls {
    /// For tcp listeners: no ALPN (the bytes are the client's).
    pub config: Arc<ClientConfig>,
    /// For http/https listeners: the same, offering ALPN `http/1.1`. Also
    /// what pooled HTTP connections are matched on (one per loaded block).
    pub http_config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    spec: ClientSpec,
    contents: Vec<Vec<u8>>,
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &ClientTls) -> bool {
        self.spec == other.spec && self.contents == other.contents
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// A session to `server`: SNI and verification use `server_name`, else
    /// the server's host name as written, else its IP address.
    pub fn session(&self, server: &ServerPlan) -> Result<super::TlsSession, rustls::Error> {
        super::TlsSession::client(Arc::clone(&self.config), self.name(server)?)
    }

    /// [`session`](Self::session) for HTTP: ALPN offers `http/1.1`.
    pub fn http_session(&self, server: &ServerPlan) -> Result<super::TlsSession, rustls::Error> {
        super::TlsSession::client(Arc::clone(&self.http_config), self.name(server)?)
    }

    /// What pooled HTTP connections made with this block for `server` are
    /// matched on (the block, and the name when it is the server's own).
    pub fn id(&self, server: &ServerPlan) -> ClientTlsId {
        let host = match self.server_name {
            Some(_) => None,
            None => server.host.clone(),
        };
        ClientTlsId(Arc::clone(&self.http_config), host)
    }

    /// Why the host name `host` of a server cannot be its TLS name, when
    /// it would be one (no `server_name`); checked when loading.
    pub fn unusable_host(&self, host: &str) -> Option<String> {
        match (&self.server_name, ServerName::try_from(host)) {
            (None, Err(e)) => Some(format!(
                "host name {host:?} cannot be sent as a TLS server name ({e}): set backend_tls.server_name"
            )),
            _ => None,
        }
    }

    /// SNI and verification name: `server_name`, else the host name the
    /// server was written with, else its address (an IP address is
    /// verified but sent as no SNI).
    fn name(&self, server: &ServerPlan) -> Result<ServerName<'static>, rustls::Error> {
        if let Some(n) = &self.server_name {
            return Ok(n.clone());
        }
        match &server.host {
            Some(h) => ServerName::try_from(h.as_ref())
                .map(|n| n.to_owned())
                .map_err(|e| rustls::Error::General(format!("server name {h:?}: {e}"))),
            None => Ok(ServerName::IpAddress(server.ip.into())),
        }
    }
}

/// The identity of one loaded `backend_tls:` block (and the server name
/// when it is the server's host name): equal only for clones of the same
/// load (it holds its config, so the identity cannot be reused by another
/// block while a pooled connection carries it).
#[derive(Clone)]
pub struct ClientTlsId(Arc<ClientConfig>, Option<Arc<str>>);

impl PartialEq for ClientTlsId {
    fn eq(&self, other: &ClientTlsId) -> bool {
        Arc::ptr_eq(&self.0, &other.0) && self.1 == other.1
    }
}

/// Loads the files of `spec`; returns the block and its warnings, or
/// every problem (keys below `backend_tls`).
pub fn load(spec: &ClientSpec) -> Result<(ClientTls, Vec<Problem>), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut contents = Vec::new();
    let server_name = match &spec.server_name {
        None => None,
        Some(n) => match ServerName::try_from(n.clone()) {
            Ok(sn) => Some(sn),
            Err(e) => {
                problems.push(Problem {
                    key: "server_name".into(),
                    message: format!("bad server_name {n:?}: {e}"),
                });
                None
            }
        },
    };
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions();
    let builder = match builder {
        Ok(b) => b,
        Err(e) => {
            return Err(vec![Problem {
                key: "enabled".into(),
                message: e.to_string(),
            }])
        }
    };
    let builder = if spec.insecure {
        warnings.push(Problem {
            key: "insecure".into(),
            message: "server certificates are not verified (insecure: true): anyone on the path can pose as the servers".into(),
        });
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(Arc::clone(&provider))))
    } else {
        let ca = spec.ca_cert.clone().unwrap_or(FileRef {
            written: SYSTEM_CA_BUNDLE.into(),
            path: SYSTEM_CA_BUNDLE.into(),
        });
        match roots(&ca) {
            Ok((store, pem)) => {
                contents.push(pem);
                builder.with_root_certificates(store)
            }
            Err(message) => {
                let message = if spec.ca_cert.is_none() {
                    format!("no ca_cert given and the system CA bundle is unusable: {message}")
                } else {
                    message
                };
                problems.push(Problem {
                    key: "ca_cert".into(),
                    message,
                });
                return Err(problems);
            }
        }
    };
    let config = match &spec.client_cert {
        None => Some(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let mut expired = Vec::new();
            let parts = certified_key_parts(cert, key, &mut expired, &mut contents);
            warnings.extend(expired.into_iter().map(|message| Problem {
                key: "client_cert".into(),
                message,
            }));
            match parts {
                Ok((chain, der)) => match builder.with_client_auth_cert(chain, der) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        problems.push(Problem {
                            key: "client_key".into(),
                            message: format!("unusable client certificate: {e}"),
                        });
                        None
                    }
                },
                Err((on_cert, message)) => {
                    problems.push(Problem {
                        key: if on_cert { "client_cert" } else { "client_key" }.into(),
                        message,
                    });
                    None
                }
            }
        }
    };
    match config {
        Some(config) if problems.is_empty() => Ok((
            ClientTls {
                http_config: Arc::new({
                    let mut http = config.clone();
                    http.alpn_protocols = vec![b"http/1.1".to_vec()];
                    http
                }),
                config: Arc::new(config),
                server_name,
                spec: spec.clone(),
                contents,
            },
            warnings,
        )),
        _ => Err(problems),
    }
}

/// `insecure: true`: any certificate is taken; signatures are still
/// checked, so the handshake itself stays sound.
#[derive(Debug)]
pub(crate) struct NoVerification(pub(crate) Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
