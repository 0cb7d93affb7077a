//! `smtp_ca_file`: a private CA that the SMTP server's certificate may chain to, trusted besides
//! the public roots. Read and checked when the project opens, so `cxflow validate` reports a
//! missing or broken file and no run starts with a trust setting it cannot use.

use std::path::{Path, PathBuf};

use lettre::transport::smtp::client::{Certificate, TlsParameters};
use rustls::pki_types::{pem::PemObject, CertificateDer};

#[derive(Clone, PartialEq, Eq)]
pub struct SmtpCa {
    /// As written in the settings, for messages.
    pub path: PathBuf,
    /// The file's certificates, DER.
    pub certs: Vec<Vec<u8>>,
}

// The certificates are public, but hundreds of bytes of DER in a `{:?}` help nobody.
impl std::fmt::Debug for SmtpCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SmtpCa({}, {} certificate(s))", self.path.display(), self.certs.len())
    }
}

impl SmtpCa {
    /// Reads the PEM file `file` (`shown` is the path as the user wrote it). The error says what
    /// is wrong with the file; the caller names the key.
    pub fn read(shown: &Path, file: &Path) -> Result<SmtpCa, String> {
        let pem = std::fs::read(file).map_err(|e| format!("cannot read `{}` ({e})", shown.display()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("`{}` is not a PEM file ({e})", shown.display()))?;
        if certs.is_empty() {
            return Err(format!("`{}` holds no certificate (no `-----BEGIN CERTIFICATE-----` block)", shown.display()));
        }
        let ca = SmtpCa { path: shown.to_path_buf(), certs };
        // Builds what a connection will build, so a certificate rustls cannot use as a root
        // fails here and not at the first email.
        tls_parameters(Some(&ca), "localhost")
            .map_err(|e| format!("`{}` holds a certificate that cannot be trusted as a CA ({e})", shown.display()))?;
        Ok(ca)
    }
}

/// TLS settings for a connection to `host`: the public roots, plus `ca` when set.
pub(crate) fn tls_parameters(ca: Option<&SmtpCa>, host: &str) -> Result<TlsParameters, lettre::transport::smtp::Error> {
    let mut b = TlsParameters::builder(host.to_string());
    for der in ca.map(|c| c.certs.as_slice()).unwrap_or_default() {
        b = b.add_root_certificate(Certificate::from_der(der.clone())?);
    }
    b.build()
}
