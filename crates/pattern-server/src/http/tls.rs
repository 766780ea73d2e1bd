//! HTTPS: a rustls acceptor whose certificate is read from PEM files and
//! read again when they change.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use pattern_error::{Error, Kind};
use rustls::crypto::ring;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::TlsConfig;

/// The certificate served, and what its files looked like when read.
pub(super) struct Certificates {
    config: TlsConfig,
    current: RwLock<Arc<CertifiedKey>>,
    /// What the two files held when last read.
    seen: Mutex<Stamp>,
}

/// A hash of each file's bytes (`None` when unreadable): a few kilobytes
/// read every interval, and no reliance on modification times, which can
/// be coarse or kept by a copy.
type Stamp = [Option<u64>; 2];

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("cert_path", &self.config.cert_path)
            .finish_non_exhaustive()
    }
}

impl Certificates {
    /// Reads the certificate and key; an error naming the file at fault.
    pub(super) fn load(config: &TlsConfig) -> Result<Arc<Self>, Error> {
        let seen = stamp(config);
        let key = read(config)?;
        Ok(Arc::new(Self {
            config: config.clone(),
            current: RwLock::new(Arc::new(key)),
            seen: Mutex::new(seen),
        }))
    }

    /// Reads the files again if they changed since last read (`Ok(true)`
    /// when a new certificate is served). A certificate or key that does
    /// not load leaves the current one served, and is an error.
    pub(super) fn reload_if_changed(&self) -> Result<bool, Error> {
        let now = stamp(&self.config);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen == now {
            return Ok(false);
        }
        let key = read(&self.config)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
        *seen = now;
        Ok(true)
    }

    /// An acceptor serving these certificates, offering `protocols` by
    /// ALPN.
    pub(super) fn acceptor(
        self: &Arc<Self>,
        http1: bool,
        http2: bool,
    ) -> Result<TlsAcceptor, Error> {
        let provider = Arc::new(ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| Error::new(Kind::Internal, format!("TLS versions: {err}")))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        if http2 {
            config.alpn_protocols.push(b"h2".to_vec());
        }
        if http1 {
            config.alpn_protocols.push(b"http/1.1".to_vec());
        }
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// What each file holds, as a hash.
fn stamp(config: &TlsConfig) -> Stamp {
    [&config.cert_path, &config.key_path].map(|path| {
        let bytes = std::fs::read(path).ok()?;
        Some(std::hash::BuildHasher::hash_one(&HASH_KEYS, bytes))
    })
}

/// Fixed keys: stamps are compared within one process only.
const HASH_KEYS: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher> =
    std::hash::BuildHasherDefault::new();

fn read(config: &TlsConfig) -> Result<CertifiedKey, Error> {
    let bad = |path: &Path, what: &str| {
        Error::new(
            Kind::InvalidInput,
            format!("TLS: {}: {what}", path.display()),
        )
    };
    let chain = CertificateDer::pem_file_iter(&config.cert_path)
        .map_err(|err| bad(&config.cert_path, &err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| bad(&config.cert_path, &err.to_string()))?;
    if chain.is_empty() {
        return Err(bad(&config.cert_path, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key_path)
        .map_err(|err| bad(&config.key_path, &err.to_string()))?;
    let certified =
        CertifiedKey::from_der(chain, key, &ring::default_provider()).map_err(|err| {
            bad(
                &config.key_path,
                &format!("does not match the certificate: {err}"),
            )
        })?;
    Ok(certified)
}
