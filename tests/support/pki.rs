//! A certificate authority made for one test (rcgen), and the server certificates it signs.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::CertificateDer;

/// A certificate authority made for one test, and the certificates it signs.
pub(crate) struct Pki {
    /// The CA certificate, PEM: what `smtp_ca_file` points at.
    pub ca_pem: String,
    ca: rcgen::Certificate,
    key: KeyPair,
}

/// A server's certificate chain and key.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    /// PKCS#8, DER.
    pub(crate) key: Vec<u8>,
}

impl Pki {
    pub(crate) fn new(name: &str) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = params.self_signed(&key).unwrap();
        Pki { ca_pem: ca.pem(), ca, key }
    }

    /// A server certificate for `names` (host names or IP addresses), signed by this CA.
    pub(crate) fn server(&self, names: &[&str]) -> Identity {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let cert = params.signed_by(&key, &self.ca, &self.key).unwrap();
        Identity { chain: vec![cert.der().clone()], key: key.serialize_der() }
    }
}
