//! Clients for calls out of the city (model providers, webhook tools):
//! TLS with the system's roots, through the one crypto provider the
//! workspace builds (ring).

use std::sync::Arc;

/// A client builder that speaks HTTPS to public hosts.
pub fn client_builder() -> Result<reqwest::ClientBuilder, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A root the system keeps but rustls cannot read is one fewer root.
        let _ = roots.add(cert);
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(reqwest::Client::builder().tls_backend_preconfigured(tls))
}
