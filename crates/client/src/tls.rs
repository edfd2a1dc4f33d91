//! TLS for `wss://` URLs: one rustls client configuration, built at `build()`.
//!
//! The server name (SNI and certificate check) is the URL's host. Without a configured CA the
//! system's root certificates are trusted; with one, only that CA.

use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_websockets::Connector;

use crate::Error;

/// TLS settings collected by the options builder.
#[derive(Clone, Default)]
pub(crate) struct TlsOptions {
    /// PEM of the CA certificate(s) to trust instead of the system roots.
    pub(crate) ca_pem: Option<Vec<u8>>,
    /// PEM of a client certificate chain and its private key.
    pub(crate) client_cert: Option<(Vec<u8>, Vec<u8>)>,
}

fn bad(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Configuration(format!("{what}: {e}"))
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(what, e))?;
    if certs.is_empty() {
        return Err(bad(what, "no certificate in the PEM"));
    }
    Ok(certs)
}

/// The connector for `wss://` connections, or a configuration error.
pub(crate) fn connector(opts: &TlsOptions) -> Result<Arc<Connector>, Error> {
    let mut roots = RootCertStore::empty();
    match &opts.ca_pem {
        Some(pem) => {
            for cert in certs(pem, "TLS CA certificate")? {
                roots.add(cert).map_err(|e| bad("TLS CA certificate", e))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system certificate rustls cannot use is skipped, as browsers do.
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS", e))?
        .with_root_certificates(roots);
    let config = match &opts.client_cert {
        Some((cert, key)) => {
            let chain = certs(cert, "TLS client certificate")?;
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| bad("TLS client key", e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad("TLS client certificate", e))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(Connector::Rustls(
        tokio_rustls::TlsConnector::from(Arc::new(config)),
    )))
}
