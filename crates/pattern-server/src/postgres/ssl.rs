//! TLS to PostgreSQL with rustls, chosen by the URL's `sslmode` as libpq
//! does: `disable`, `prefer` (the default), `require`, `verify-ca`,
//! `verify-full`; `sslrootcert` names the trusted CA (PEM), else the
//! Mozilla roots are trusted.

use std::path::PathBuf;
use std::sync::Arc;

use pattern_error::{Error, Kind};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A URL without its `sslmode` and `sslrootcert` (tokio-postgres knows
/// neither `verify-ca` nor `verify-full`), and what they said.
/// Works on URLs (`postgres://…?sslmode=…`) and on key=value strings
/// (`host=db sslmode=require`; values without spaces).
pub(super) fn split_url(url: &str) -> Result<(String, SslMode, Option<PathBuf>), Error> {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let (base, pairs, separator): (&str, Vec<&str>, &str) = if is_url {
        match url.split_once('?') {
            Some((base, query)) => (base, query.split('&').collect(), "&"),
            None => (url, Vec::new(), "&"),
        }
    } else {
        ("", url.split_whitespace().collect(), " ")
    };
    let mut mode = SslMode::Prefer;
    let mut root = None;
    let mut kept = Vec::new();
    for pair in pairs.into_iter().filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key.trim() {
            "sslmode" => mode = parse_mode(value.trim())?,
            "sslrootcert" if is_url => root = Some(PathBuf::from(percent_decode(value))),
            "sslrootcert" => root = Some(PathBuf::from(value.trim())),
            _ => kept.push(pair),
        }
    }
    let url = match (is_url, kept.is_empty()) {
        (true, true) => base.to_owned(),
        (true, false) => format!("{base}?{}", kept.join(separator)),
        (false, _) => kept.join(separator),
    };
    Ok((url, mode, root))
}

fn parse_mode(text: &str) -> Result<SslMode, Error> {
    Ok(match text {
        "disable" => SslMode::Disable,
        "allow" | "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        other => {
            return Err(Error::new(
                Kind::InvalidInput,
                format!("unknown sslmode `{other}`"),
            ));
        }
    })
}

/// `%XX` escapes decoded (paths in URLs).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rustls connector `mode` asks for (`None`: plain connections).
pub(super) fn connector(
    mode: SslMode,
    root: Option<&PathBuf>,
) -> Result<Option<MakeRustlsConnect>, Error> {
    let provider = Arc::new(ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(Kind::Internal, format!("TLS versions: {e}")))?;
    let config = match mode {
        SslMode::Disable => return Ok(None),
        // Encrypted, not authenticated: libpq's prefer and require.
        SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(roots(root)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| Error::new(Kind::InvalidInput, format!("TLS roots: {e}")))?;
            let verifier: Arc<dyn ServerCertVerifier> = if mode == SslMode::VerifyCa {
                Arc::new(AnyName(webpki))
            } else {
                webpki
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        }
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// The CA certificates in `root`, or the Mozilla roots.
fn roots(root: Option<&PathBuf>) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    let Some(path) = root else {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(store);
    };
    let bad = |what: String| {
        Error::new(
            Kind::InvalidInput,
            format!("sslrootcert {}: {what}", path.display()),
        )
    };
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        store
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if store.is_empty() {
        return Err(bad("no certificate in the file".to_owned()));
    }
    Ok(store)
}

/// Accepts any certificate (libpq's `prefer` and `require`: encryption
/// without authentication), still checking the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
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

/// A trusted chain whatever the name (`verify-ca`).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::{SslMode, split_url};

    #[test]
    fn sslmode_and_root_leave_the_url() {
        let (url, mode, root) = split_url(
            "postgres://u@h/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem",
        )
        .unwrap();
        assert_eq!(url, "postgres://u@h/db?application_name=x");
        assert_eq!(mode, SslMode::VerifyFull);
        assert_eq!(root.unwrap().to_str(), Some("/tmp/ca.pem"));
        let (url, mode, root) = split_url("postgres://u@h/db").unwrap();
        assert_eq!(
            (url.as_str(), mode, root),
            ("postgres://u@h/db", SslMode::Prefer, None)
        );
        for (text, want) in [
            ("disable", SslMode::Disable),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
        ] {
            assert_eq!(
                split_url(&format!("postgres://h/db?sslmode={text}"))
                    .unwrap()
                    .1,
                want
            );
        }
        assert!(split_url("postgres://h/db?sslmode=sometimes").is_err());
        // key=value strings too: a required TLS is not silently preferred.
        let (rest, mode, root) =
            split_url("host=db user=app sslmode=require sslrootcert=/ca.pem").unwrap();
        assert_eq!(
            (rest.as_str(), mode),
            ("host=db user=app", SslMode::Require)
        );
        assert_eq!(root.unwrap().to_str(), Some("/ca.pem"));
        assert_eq!(split_url("host=db").unwrap().1, SslMode::Prefer);
    }
}
