//! TLS on the listener (rustls), for installs without a load balancer in front.
//!
//! ALPN offers `h2` and `http/1.1`. The certificate is reloaded without a restart: every
//! `server.tls.reload_interval` both files are read again, and when their bytes changed and the pair
//! loads (and the key matches the certificate), new handshakes get the new certificate. Reading the
//! bytes rather than comparing modification times also catches a copy that kept the old times, and
//! Kubernetes secret volumes, which swap a symlink. A pair that does not load (for example a
//! certificate written before its key) keeps the certificate in force and logs why, until the
//! next change.

use std::sync::{Arc, RwLock};

use anyhow::{Context, bail};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::config::TlsConfig;
use crate::telemetry::metrics::TLS_RELOADS_TOTAL;

/// The crypto provider, named rather than taken from the process default: several rustls
/// providers are compiled into this binary, and rustls refuses to guess between them.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The bytes of both files, to tell whether they changed.
type Files = (Vec<u8>, Vec<u8>);

fn read_files(tls: &TlsConfig) -> anyhow::Result<Files> {
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
    };
    Ok((
        read(&tls.cert_path, "certificate")?,
        read(&tls.key_path, "private key")?,
    ))
}

fn parse(tls: &TlsConfig, (cert, key): &Files) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not a PEM certificate chain", tls.cert_path.display()))?;
    if chain.is_empty() {
        bail!("{}: holds no certificate", tls.cert_path.display());
    }
    // The error never quotes the key file: it is a secret.
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| {
        anyhow::anyhow!(
            "{}: no PEM private key (PKCS#8, PKCS#1 or SEC1)",
            tls.key_path.display()
        )
    })?;
    CertifiedKey::from_der(chain, key, &provider()).with_context(|| {
        format!(
            "{} and {} do not make a usable pair",
            tls.cert_path.display(),
            tls.key_path.display()
        )
    })
}

/// The certificate in force; handshakes read it, the reload task replaces it.
#[derive(Debug)]
struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// A TLS acceptor whose certificate follows the files.
pub struct ReloadingTls {
    tls: TlsConfig,
    current: Arc<CurrentCertificate>,
    loaded: Files,
    acceptor: TlsAcceptor,
}

impl ReloadingTls {
    /// Loads the certificate; fails naming the file at fault.
    pub fn new(tls: &TlsConfig) -> anyhow::Result<Self> {
        let files = read_files(tls)?;
        let current = Arc::new(CurrentCertificate(RwLock::new(Arc::new(parse(
            tls, &files,
        )?))));
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            tls: tls.clone(),
            current,
            loaded: files,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The acceptor for new connections.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Reads the files again every `reload_interval` until `stop`, and swaps in a changed pair.
    pub async fn watch(mut self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.tls.reload_interval) => {}
                _ = stop.cancelled() => return,
            }
            self.reload_if_changed();
        }
    }

    fn reload_if_changed(&mut self) {
        let files = match read_files(&self.tls) {
            Ok(files) if files == self.loaded => return,
            Ok(files) => files,
            Err(err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "TLS certificate not reloaded; the one in force stays"
                );
                return;
            }
        };
        let outcome = parse(&self.tls, &files);
        // Remember these bytes either way: a bad pair is reported once, not every interval.
        self.loaded = files;
        match outcome {
            Ok(certificate) => {
                *self.current.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(certificate);
                metrics::counter!(TLS_RELOADS_TOTAL, "outcome" => "reloaded").increment(1);
                tracing::info!(cert = %self.tls.cert_path.display(), "TLS certificate reloaded");
            }
            Err(err) => {
                metrics::counter!(TLS_RELOADS_TOTAL, "outcome" => "failed").increment(1);
                tracing::warn!(
                    error = format!("{err:#}"),
                    "TLS certificate files changed but do not load; the one in force stays"
                );
            }
        }
    }
}
