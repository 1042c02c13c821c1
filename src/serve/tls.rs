//! Where rustls is configured: a validated TLS section of the web config becomes a
//! [`rustls::ServerConfig`] ([`server_config`]), and the `healthcheck` subcommand's client
//! config is made here ([`probe_client_config`]).
//!
//! The names (client auth types, versions, cipher suites, curves) are those of Go's
//! crypto/tls, which the exporter-toolkit format uses; what rustls cannot do is an error
//! naming it, never silently something else.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{aws_lc_rs, CryptoProvider, SupportedKxGroup, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme, SupportedCipherSuite, SupportedProtocolVersion,
};

/// Go's `tls.ClientAuthType`, by the names the web config uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    /// Asked for, not required, not verified.
    RequestClientCert,
    /// Required, not verified against a CA (only the handshake signature is).
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    pub const NAMES: &'static str = "NoClientCert, RequestClientCert, RequireAnyClientCert, \
                                     VerifyClientCertIfGiven, RequireAndVerifyClientCert";

    pub fn parse(name: &str) -> Option<ClientAuth> {
        Some(match name {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // "RequireClientCert" is the exporter-toolkit's older spelling.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            _ => return None,
        })
    }

    pub fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }

    pub fn requires(self) -> bool {
        matches!(
            self,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// What [`server_config`] needs, every name already resolved.
pub struct TlsSettings {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub client_auth: ClientAuth,
    pub client_cas: Vec<CertificateDer<'static>>,
    /// Exact matches against the client certificate's DNS, e-mail, IP and URI SANs.
    pub client_allowed_sans: Option<Vec<String>>,
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// In preference order; empty means rustls's defaults.
    pub cipher_suites: Vec<SupportedCipherSuite>,
    pub curves: Vec<&'static dyn SupportedKxGroup>,
    pub prefer_server_cipher_suites: bool,
    pub http2: bool,
}

/// Parses a TLS version name; `Err` says why one is refused.
pub fn version(name: &str) -> Result<&'static SupportedProtocolVersion, String> {
    match name {
        "TLS12" => Ok(&rustls::version::TLS12),
        "TLS13" => Ok(&rustls::version::TLS13),
        "TLS10" | "TLS11" => Err(format!(
            "{name} is not supported: this exporter's TLS library (rustls) implements \
             TLS 1.2 and 1.3 only; use TLS12 or TLS13"
        )),
        _ => Err(format!("unknown TLS version {name:?}; use TLS12 or TLS13")),
    }
}

/// Go's cipher suite names that rustls does not implement (RSA key exchange, CBC).
/// Anything else unknown is reported as unknown.
const GO_ONLY_SUITES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// Parses a cipher suite by Go's name (Go's short CHACHA20 aliases included).
pub fn cipher_suite(name: &str) -> Result<SupportedCipherSuite, String> {
    use aws_lc_rs::cipher_suite as cs;
    Ok(match name {
        "TLS_AES_128_GCM_SHA256" => cs::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_256_GCM_SHA384" => cs::TLS13_AES_256_GCM_SHA384,
        "TLS_CHACHA20_POLY1305_SHA256" => cs::TLS13_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ if GO_ONLY_SUITES.contains(&name) => {
            return Err(format!(
                "{name} is not supported: this exporter's TLS library (rustls) implements \
                 only ECDHE key exchange with AES-GCM or ChaCha20-Poly1305"
            ))
        }
        _ => return Err(format!("unknown cipher suite {name:?}")),
    })
}

/// Parses a curve by Go's `tls.CurveID` name.
pub fn curve(name: &str) -> Result<&'static dyn SupportedKxGroup, String> {
    use aws_lc_rs::kx_group;
    match name {
        "X25519" => Ok(kx_group::X25519),
        "CurveP256" => Ok(kx_group::SECP256R1),
        "CurveP384" => Ok(kx_group::SECP384R1),
        "CurveP521" => Err(
            "CurveP521 is not supported: this exporter's TLS library (rustls) offers \
             X25519, CurveP256 and CurveP384"
                .to_owned(),
        ),
        _ => Err(format!(
            "unknown curve {name:?}; use X25519, CurveP256 or CurveP384"
        )),
    }
}

/// Builds the server side of TLS. Errors are rustls's own words about the key, the
/// certificates or an impossible combination.
pub fn server_config(settings: TlsSettings) -> Result<ServerConfig, String> {
    let mut provider = aws_lc_rs::default_provider();
    if !settings.cipher_suites.is_empty() {
        let listed_13 = settings
            .cipher_suites
            .iter()
            .any(|s| s.version() == &rustls::version::TLS13);
        // As in Go, the list governs TLS 1.2; TLS 1.3 suites are all kept unless
        // some are listed, then only those (Go cannot restrict them at all).
        let mut suites = settings.cipher_suites.clone();
        if !listed_13 {
            suites.extend(
                provider
                    .cipher_suites
                    .iter()
                    .filter(|s| s.version() == &rustls::version::TLS13),
            );
        }
        if settings.versions.contains(&&rustls::version::TLS12)
            && !suites
                .iter()
                .any(|s| s.version() == &rustls::version::TLS12)
        {
            return Err(
                "cipher_suites lists no TLS 1.2 suite but TLS 1.2 is allowed (min_version); \
                 list one or set min_version: TLS13"
                    .to_owned(),
            );
        }
        provider.cipher_suites = suites;
    }
    if !settings.curves.is_empty() {
        provider.kx_groups = settings.curves.clone();
    }
    let algorithms = provider.signature_verification_algorithms;
    let provider = Arc::new(provider);

    let verifier = client_verifier(&settings, &provider, algorithms)?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&settings.versions)
        .map_err(|e| e.to_string())?;
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    // with_single_cert also checks that the key belongs to the certificate.
    let mut config = builder
        .with_single_cert(settings.chain, settings.key)
        .map_err(|e| format!("certificate and key do not make a usable pair: {e}"))?;
    config.ignore_client_order = settings.prefer_server_cipher_suites;
    config.alpn_protocols = if settings.http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

fn client_verifier(
    settings: &TlsSettings,
    provider: &Arc<CryptoProvider>,
    algorithms: WebPkiSupportedAlgorithms,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, String> {
    let base: Arc<dyn ClientCertVerifier> = match settings.client_auth {
        ClientAuth::NoClientCert => return Ok(None),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Arc::new(AnyClientCert {
                mandatory: settings.client_auth == ClientAuth::RequireAnyClientCert,
                algorithms,
            })
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let mut roots = RootCertStore::empty();
            for (i, ca) in settings.client_cas.iter().enumerate() {
                roots
                    .add(ca.clone())
                    .map_err(|e| format!("client CA certificate #{}: {e}", i + 1))?;
            }
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
            let builder = if settings.client_auth == ClientAuth::VerifyClientCertIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder.build().map_err(|e| format!("client CA: {e}"))?
        }
    };
    Ok(Some(match &settings.client_allowed_sans {
        Some(allowed) => Arc::new(AllowedSans {
            inner: base,
            algorithms,
            allowed: allowed.clone(),
        }),
        None => base,
    }))
}

/// The `healthcheck` subcommand's TLS client: it probes this host's own exporter
/// for liveness, so the server's certificate is not checked against any root (the
/// handshake signature still is). Never used for anything else.
pub fn probe_client_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = aws_lc_rs::default_provider();
    let algorithms = provider.signature_verification_algorithms;
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert { algorithms }))
            .with_no_client_auth(),
    )
}

/// The handshake-signature checks every verifier here shares, with the provider's
/// algorithms: the permissive verifiers take the certificate as it is, but the peer
/// must still hold its key. (The two verifier traits have these methods alike but
/// are different traits.)
macro_rules! signature_checks {
    ($($check:ident),*) => {
        $(
            // Each method calls rustls' function of the same name.
            fn $check(
                &self,
                message: &[u8],
                cert: &CertificateDer<'_>,
                dss: &DigitallySignedStruct,
            ) -> Result<HandshakeSignatureValid, rustls::Error> {
                rustls::crypto::$check(message, cert, dss, &self.algorithms)
            }
        )*

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

#[derive(Debug)]
struct AnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    signature_checks!(verify_tls12_signature, verify_tls13_signature);
}

/// RequestClientCert and RequireAnyClientCert: any certificate is taken, but the
/// handshake signature is still checked, so the client holds the certificate's key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    signature_checks!(verify_tls12_signature, verify_tls13_signature);
}

/// `client_allowed_sans`: after the inner verifier accepts the chain, the client
/// certificate must carry one of the listed SANs, compared exactly as the
/// exporter-toolkit does (DNS names, e-mail addresses, IPs, URIs).
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    algorithms: WebPkiSupportedAlgorithms,
    allowed: Vec<String>,
}

impl fmt::Debug for AllowedSans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllowedSans")
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let sans = subject_alt_names(end_entity).ok_or(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        ))?;
        if sans.iter().any(|san| self.allowed.contains(san)) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    // The same algorithms the inner verifier checks signatures with (both inner
    // verifiers are built from one provider), so the wrapper needs not forward.
    signature_checks!(verify_tls12_signature, verify_tls13_signature);
}

/// The DNS, e-mail, IP (as text, as Go prints it) and URI SANs of a certificate;
/// `None` if it does not parse.
pub fn subject_alt_names(cert: &CertificateDer<'_>) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let Ok(Some(ext)) = parsed.subject_alternative_name() else {
        return Some(Vec::new());
    };
    Some(
        ext.value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                    Some((*s).to_owned())
                }
                GeneralName::IPAddress(bytes) => ip_text(bytes),
                _ => None,
            })
            .collect(),
    )
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_go() {
        assert!(version("TLS12").is_ok());
        assert!(version("TLS10")
            .unwrap_err()
            .contains("TLS 1.2 and 1.3 only"));
        assert!(version("tls12").unwrap_err().contains("unknown"));
        assert!(cipher_suite("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305").is_ok());
        assert!(cipher_suite("TLS_RSA_WITH_AES_128_CBC_SHA")
            .unwrap_err()
            .contains("not supported"));
        assert!(cipher_suite("TLS_MADE_UP").unwrap_err().contains("unknown"));
        assert!(curve("CurveP521").unwrap_err().contains("not supported"));
        assert!(curve("X25519").is_ok());
        assert_eq!(
            ClientAuth::parse("RequireClientCert"),
            Some(ClientAuth::RequireAnyClientCert)
        );
        assert_eq!(ClientAuth::parse("requireandverifyclientcert"), None);
    }

    #[test]
    fn ip_sans_print_as_go_prints_them() {
        assert_eq!(ip_text(&[127, 0, 0, 1]).as_deref(), Some("127.0.0.1"));
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        assert_eq!(ip_text(&v6).as_deref(), Some("::1"));
        assert_eq!(ip_text(&[1, 2, 3]), None);
    }
}
