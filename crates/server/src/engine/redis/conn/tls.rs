//! TLS for Redis connections: PEM settings, the rustls client setup and the
//! `insecure_skip_verify` verifier.

use super::*;

/// Reads a PEM setting: raw PEM, base64 PEM or a file path (Centrifugo v6's rules), or the
/// explicit `_file` / `_b64` variants. `None` when none is set.
pub(crate) fn load_pem(
    key: &str,
    value: &str,
    file: &str,
    b64: &str,
) -> Result<Option<Vec<u8>>, ConfigError> {
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
pub(super) struct SkipVerify(Arc<rustls::crypto::CryptoProvider>);

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

/// The TLS setup of section `key` (`engine.redis.tls` or `engine.redis.sentinel_tls`).
pub(crate) fn tls_setup(key: &str, c: &RedisTlsConfig) -> Result<Tls, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(key, e))?;
    let builder = if c.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let ca_key = format!("{key}.server_ca_pem");
        match load_pem(
            &ca_key,
            &c.server_ca_pem,
            &c.server_ca_pem_file,
            &c.server_ca_pem_b64,
        )? {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| bad(&ca_key, e))?;
                    roots.add(cert).map_err(|e| bad(&ca_key, e))?;
                }
                if roots.is_empty() {
                    return Err(bad(&ca_key, "no certificate found"));
                }
            }
            None => {
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
            }
        }
        builder.with_root_certificates(roots)
    };
    let cert_key = format!("{key}.cert_pem");
    let key_key = format!("{key}.key_pem");
    let cert = load_pem(&cert_key, &c.cert_pem, &c.cert_pem_file, &c.cert_pem_b64)?;
    let private = load_pem(&key_key, &c.key_pem, &c.key_pem_file, &c.key_pem_b64)?;
    let config = match (cert, private) {
        (Some(cert), Some(private)) => {
            let chain = CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(&cert_key, e))?;
            let private = PrivateKeyDer::from_pem_slice(&private).map_err(|e| bad(&key_key, e))?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| bad(&cert_key, e))?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err(bad(&key_key, "required with cert_pem")),
        (None, Some(_)) => return Err(bad(&cert_key, "required with key_pem")),
    };
    let server_name = (!c.server_name.is_empty()).then(|| c.server_name.clone());
    if let Some(name) = &server_name {
        ServerName::try_from(name.clone()).map_err(|e| bad(format!("{key}.server_name"), e))?;
    }
    Ok(Tls {
        config: Arc::new(config),
        server_name,
    })
}

/// The rustls client configuration of TLS section `key`, for clients other than Redis (the
/// NATS broker reads the same keys).
pub(crate) fn client_tls_config(
    key: &str,
    c: &RedisTlsConfig,
) -> Result<rustls::ClientConfig, ConfigError> {
    tls_setup(key, c).map(|tls| (*tls.config).clone())
}

/// The rustls client configuration of TLS section `key` and the server name it overrides
/// (shared with the PostgreSQL engine, whose `tls` sections have the same keys).
pub(crate) fn client_config(
    key: &str,
    c: &RedisTlsConfig,
) -> Result<(Arc<rustls::ClientConfig>, Option<String>), ConfigError> {
    let tls = tls_setup(key, c)?;
    Ok((tls.config, tls.server_name))
}

/// The rustls client configuration of a TLS section in the Redis sections' shape (CA,
/// client certificate, `insecure_skip_verify`), for other clients (the PostgreSQL outbox
/// consumer); `key` names the section in errors.
pub(crate) fn rustls_client_config(
    key: &str,
    c: &RedisTlsConfig,
) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    tls_setup(key, c).map(|tls| tls.config)
}
