//! TLS settings shared by every TLS user of the server: PEM loading with Centrifugo v6's rules,
//! the rustls client configuration of a TLS section (Redis, NATS, GRPC proxies) and the server
//! configuration of the HTTP listeners.

use std::sync::Arc;

use base64::Engine as _;
use gyre_config::RedisTlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A TLS setting that cannot be used, naming its key.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub(crate) struct TlsError {
    /// The dotted key of the setting.
    pub(crate) key: String,
    /// What is wrong with it.
    pub(crate) reason: String,
}

fn bad(key: impl Into<String>, reason: impl std::fmt::Display) -> TlsError {
    TlsError {
        key: key.into(),
        reason: reason.to_string(),
    }
}

/// Reads a PEM setting: raw PEM, base64 PEM or a file path (Centrifugo v6's rules), or the
/// explicit `_file` / `_b64` variants. `None` when none is set.
pub(crate) fn load_pem(
    key: &str,
    value: &str,
    file: &str,
    b64: &str,
) -> Result<Option<Vec<u8>>, TlsError> {
    let is_pem = |b: &[u8]| b.windows(11).any(|w| w == b"-----BEGIN ");
    if !value.is_empty() {
        if is_pem(value.as_bytes()) {
            return Ok(Some(value.as_bytes().to_vec()));
        }
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(value.trim())
            && is_pem(&decoded)
        {
            return Ok(Some(decoded));
        }
        return match std::fs::read(value) {
            Ok(bytes) if is_pem(&bytes) => Ok(Some(bytes)),
            Ok(_) => Err(bad(key, format!("file {value:?} holds no PEM data"))),
            Err(e) => Err(bad(
                key,
                format!("neither PEM, base64 PEM nor a readable file ({value:?}: {e})"),
            )),
        };
    }
    if !file.is_empty() {
        let bytes = std::fs::read(file).map_err(|e| bad(format!("{key}_file"), e))?;
        return Ok(Some(bytes));
    }
    if !b64.is_empty() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| bad(format!("{key}_b64"), e))?;
        return Ok(Some(bytes));
    }
    Ok(None)
}

/// Accepts any server certificate (`insecure_skip_verify`), still checking handshake
/// signatures.
#[derive(Debug)]
struct SkipVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Every certificate in the PEM setting `key`; an error when there is none.
fn certificates(key: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(key, e))?;
    if certs.is_empty() {
        return Err(bad(key, "no certificate found"));
    }
    Ok(certs)
}

/// A root store of the certificates in the PEM setting `key`.
fn root_store(key: &str, pem: &[u8]) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(key, pem)? {
        roots.add(cert).map_err(|e| bad(key, e))?;
    }
    Ok(roots)
}

/// The certificate chain and private key of section `key` (`cert_pem` + `key_pem` in any of
/// their forms); `None` when neither is set.
fn identity(
    key: &str,
    c: &RedisTlsConfig,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TlsError> {
    let cert_key = format!("{key}.cert_pem");
    let key_key = format!("{key}.key_pem");
    let cert = load_pem(&cert_key, &c.cert_pem, &c.cert_pem_file, &c.cert_pem_b64)?;
    let private = load_pem(&key_key, &c.key_pem, &c.key_pem_file, &c.key_pem_b64)?;
    match (cert, private) {
        (Some(cert), Some(private)) => {
            let chain = certificates(&cert_key, &cert)?;
            let private = PrivateKeyDer::from_pem_slice(&private).map_err(|e| bad(&key_key, e))?;
            Ok(Some((chain, private)))
        }
        (None, None) => Ok(None),
        (Some(_), None) => Err(bad(&key_key, "required with cert_pem")),
        (None, Some(_)) => Err(bad(&cert_key, "required with key_pem")),
    }
}

/// The rustls client configuration of TLS section `key`: the server CA (`server_ca_pem`, the
/// system roots otherwise) or `insecure_skip_verify`, and the optional client certificate.
pub(crate) fn client_config(
    key: &str,
    c: &RedisTlsConfig,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(key, e))?;
    let builder = if c.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
    } else {
        let ca_key = format!("{key}.server_ca_pem");
        let roots = match load_pem(
            &ca_key,
            &c.server_ca_pem,
            &c.server_ca_pem_file,
            &c.server_ca_pem_b64,
        )? {
            Some(pem) => root_store(&ca_key, &pem)?,
            None => {
                let mut roots = rustls::RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(bad(
                        &ca_key,
                        "no system root certificates found: set server_ca_pem",
                    ));
                }
                roots
            }
        };
        builder.with_root_certificates(roots)
    };
    match identity(key, c)? {
        Some((chain, private)) => builder
            .with_client_auth_cert(chain, private)
            .map_err(|e| bad(format!("{key}.cert_pem"), e)),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The name the server's certificate must have instead of the address host (`server_name` of
/// TLS section `key`), checked to be a valid DNS name or IP address; `None` when not set.
pub(crate) fn server_name(key: &str, c: &RedisTlsConfig) -> Result<Option<String>, TlsError> {
    if c.server_name.is_empty() {
        return Ok(None);
    }
    ServerName::try_from(c.server_name.clone())
        .map_err(|e| bad(format!("{key}.server_name"), e))?;
    Ok(Some(c.server_name.clone()))
}

/// The rustls server configuration of TLS section `key`: the required certificate and key,
/// client certificates required and checked against `client_ca_pem` when set (mutual TLS),
/// and `alpn` offered in order.
pub(crate) fn server_config(
    key: &str,
    c: &RedisTlsConfig,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(key, e))?;
    let ca_key = format!("{key}.client_ca_pem");
    let builder = match load_pem(
        &ca_key,
        &c.client_ca_pem,
        &c.client_ca_pem_file,
        &c.client_ca_pem_b64,
    )? {
        Some(pem) => {
            let roots = Arc::new(root_store(&ca_key, &pem)?);
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| bad(&ca_key, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let Some((chain, private)) = identity(key, c)? else {
        return Err(bad(
            format!("{key}.cert_pem"),
            "a certificate and key are required when TLS is enabled",
        ));
    };
    let mut config = builder
        .with_single_cert(chain, private)
        .map_err(|e| bad(format!("{key}.key_pem"), e))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
