//! A throwaway CA and a server certificate for `127.0.0.1`/`localhost`, made at start.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::TlsConnector;

/// The generated CA (PEM) and a rustls server config presenting the server certificate.
pub(crate) struct Tls {
    pub ca_pem: String,
    pub config: Arc<ServerConfig>,
}

/// Generates an ECDSA P-256 CA and a server certificate it signs, with SANs `localhost` and
/// `127.0.0.1`, and a TLS 1.2/1.3 server config (ring provider) offering ALPN `h2` and
/// `http/1.1`, as the real API server does, or `http/1.1` only with `http1_only`.
pub(crate) fn generate(http1_only: bool) -> Result<Tls, String> {
    let err = |what: &str| {
        let what = what.to_owned();
        move |e: rcgen::Error| format!("{what}: {e}")
    };
    let ca_key = KeyPair::generate().map_err(err("CA key"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err("CA params"))?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "plexus-apiserver-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).map_err(err("CA cert"))?;

    let key = KeyPair::generate().map_err(err("server key"))?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(err("server params"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "plexus-apiserver");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .map_err(err("server cert"))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(|e| format!("TLS server config: {e}"))?;
    config.alpn_protocols = if http1_only {
        vec![b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    };
    Ok(Tls {
        ca_pem: ca.pem(),
        config: Arc::new(config),
    })
}

/// A TLS connector trusting the CA `ca_pem` (one certificate) and offering ALPN `http/1.1`
/// only, ring provider: the plain HTTPS client of the rig's own tests and benchmarks.
pub fn http1_connector(ca_pem: &str) -> Result<TlsConnector, String> {
    let ca =
        CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| format!("CA PEM: {e}"))?;
    let mut roots = RootCertStore::empty();
    roots.add(ca).map_err(|e| format!("CA certificate: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}
