//! The web config's `tls_server_config` section → the [`TlsSettings`] that
//! [`tls::server_config`] turns into rustls's configuration, every refusal naming its key;
//! also whether a section turns TLS on at all, which the healthcheck asks too.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{invalid, Invalid, RawTls};
use crate::serve::tls::{self, ClientAuth, TlsSettings};

/// The TLS section, with its files read; `None` when it configures no TLS. Each key is
/// checked, and the certificate, key and client CA files are read and decoded
/// (relative to the web config's directory).
pub(super) fn tls_settings(
    raw: RawTls,
    dir: &Path,
    http2: bool,
) -> Result<Option<TlsSettings>, Invalid> {
    const K: &str = "tls_server_config";
    if !tls_enabled(&raw) {
        // Without a certificate the other keys would do nothing: say so rather than
        // let someone believe min_version or client_allowed_sans protects them.
        let idle = [
            ("min_version", raw.min_version.is_some()),
            ("max_version", raw.max_version.is_some()),
            ("cipher_suites", raw.cipher_suites.is_some()),
            ("curve_preferences", raw.curve_preferences.is_some()),
            ("client_allowed_sans", raw.client_allowed_sans.is_some()),
            (
                "prefer_server_cipher_suites",
                raw.prefer_server_cipher_suites.is_some(),
            ),
        ];
        if let Some((name, _)) = idle.iter().find(|(_, is_set)| *is_set) {
            return Err(invalid(
                format!("{K}.{name}"),
                "set, but TLS is off: there is no cert_file or cert",
            ));
        }
        return Ok(None);
    }

    let cert_pem = pem_source(dir, K, "cert", raw.cert, "cert_file", raw.cert_file)?;
    let key_pem = pem_source(dir, K, "key", raw.key, "key_file", raw.key_file)?;
    let (Some((cert_key, cert_pem)), Some((key_key, key_pem))) = (cert_pem, key_pem) else {
        return Err(invalid(
            K,
            "needs both a certificate (cert_file or cert) and a key (key_file or key)",
        ));
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(&cert_key, format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(invalid(cert_key, "no PEM certificate in it"));
    }
    // The error never quotes the key's content.
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| invalid(key_key, format!("no usable PEM private key in it ({e})")))?;

    let auth_name = raw.client_auth_type.unwrap_or_default();
    let client_auth = ClientAuth::parse(&auth_name).ok_or_else(|| {
        invalid(
            format!("{K}.client_auth_type"),
            format!(
                "unknown value {auth_name:?}; use one of {}",
                ClientAuth::NAMES
            ),
        )
    })?;
    let ca = pem_source(
        dir,
        K,
        "client_ca",
        raw.client_ca,
        "client_ca_file",
        raw.client_ca_file,
    )?;
    let client_cas = match ca {
        Some((ca_key, pem)) => {
            if client_auth == ClientAuth::NoClientCert {
                return Err(invalid(
                    ca_key,
                    "client CAs are configured but client_auth_type is NoClientCert; \
                     set client_auth_type: RequireAndVerifyClientCert",
                ));
            }
            let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| invalid(&ca_key, format!("not a PEM certificate: {e}")))?;
            if cas.is_empty() {
                return Err(invalid(ca_key, "no PEM certificate in it"));
            }
            cas
        }
        None => Vec::new(),
    };
    if client_auth.verifies() && client_cas.is_empty() {
        return Err(invalid(
            format!("{K}.client_auth_type"),
            format!(
                "{auth_name} needs client_ca_file or client_ca: this exporter does not \
                 verify client certificates against the system's roots"
            ),
        ));
    }
    if raw.client_allowed_sans.is_some() && !client_auth.requires() {
        return Err(invalid(
            format!("{K}.client_allowed_sans"),
            "needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert: \
             with the others a client may send no certificate, leaving no SAN to match",
        ));
    }

    let min = tls::version(raw.min_version.as_deref().unwrap_or("TLS12"))
        .map_err(|e| invalid(format!("{K}.min_version"), e))?;
    let max = tls::version(raw.max_version.as_deref().unwrap_or("TLS13"))
        .map_err(|e| invalid(format!("{K}.max_version"), e))?;
    let rank = |v: &rustls::SupportedProtocolVersion| u16::from(v.version);
    if rank(min) > rank(max) {
        return Err(invalid(format!("{K}.min_version"), "is above max_version"));
    }
    let versions = [&rustls::version::TLS12, &rustls::version::TLS13]
        .into_iter()
        .filter(|v| rank(v) >= rank(min) && rank(v) <= rank(max))
        .collect();
    let cipher_suites = parse_list(
        &format!("{K}.cipher_suites"),
        raw.cipher_suites,
        tls::cipher_suite,
    )?;
    let curves = parse_list(
        &format!("{K}.curve_preferences"),
        raw.curve_preferences,
        tls::curve,
    )?;
    Ok(Some(TlsSettings {
        chain,
        key,
        client_auth,
        client_cas,
        client_allowed_sans: raw.client_allowed_sans,
        versions,
        cipher_suites,
        curves,
        prefer_server_cipher_suites: raw.prefer_server_cipher_suites.unwrap_or(true),
        http2,
    }))
}

/// Parses each name of a list; an error names the key and the item's index.
fn parse_list<T>(
    key: &str,
    names: Option<Vec<String>>,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, Invalid> {
    names
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, name)| parse(name).map_err(|e| invalid(format!("{key}[{i}]"), e)))
        .collect()
}

/// Whether a TLS section turns TLS on: any of its certificate, key or client-auth
/// keys is set (as the toolkit's `IsEnabled`).
pub(super) fn tls_enabled(raw: &RawTls) -> bool {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    set(&raw.cert)
        || set(&raw.cert_file)
        || set(&raw.key)
        || set(&raw.key_file)
        || set(&raw.client_ca)
        || set(&raw.client_ca_file)
        || set(&raw.client_auth_type)
}

/// One PEM given inline (`inline_key`) or by file (`file_key`), not both. Returns the
/// key it came from (for errors) and the bytes.
fn pem_source(
    dir: &Path,
    section: &str,
    inline_key: &str,
    inline: Option<String>,
    file_key: &str,
    file: Option<String>,
) -> Result<Option<(String, Vec<u8>)>, Invalid> {
    let inline = inline.filter(|s| !s.is_empty());
    let file = file.filter(|s| !s.is_empty());
    match (inline, file) {
        (Some(_), Some(_)) => Err(invalid(
            format!("{section}.{file_key}"),
            format!("set either {file_key} or {inline_key}, not both"),
        )),
        (Some(text), None) => Ok(Some((format!("{section}.{inline_key}"), text.into_bytes()))),
        (None, Some(name)) => {
            let key = format!("{section}.{file_key}");
            let path = dir.join(&name);
            std::fs::read(&path)
                .map(|bytes| Some((key.clone(), bytes)))
                .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
        }
        (None, None) => Ok(None),
    }
}
