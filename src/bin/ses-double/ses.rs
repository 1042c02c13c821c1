//! SES's own operations and their XML answers, from what the double holds in the
//! request's scope: `GetIdentityMailFromDomainAttributes`,
//! `GetIdentityDkimAttributes` and `GetIdentityVerificationAttributes` (at most
//! [`MAX_IDENTITIES`] a batch), `GetSendQuota`, `GetAccountSendingEnabled`,
//! `ListIdentities` (paged, at most [`MAX_LIST_ITEMS`] a page), and `InvalidAction`
//! for any operation that is neither SES's nor STS's.

use std::collections::BTreeMap;

use http::{Response, StatusCode};

use crate::state::{Identity, Scope};
use crate::wire::{error_xml, request_id, respond, wrap_in, xml_escape, MaybeBroken, XMLNS};

const MAX_IDENTITIES: usize = 100;
const MAX_LIST_ITEMS: usize = 1000;

/// The answer to one SES operation and the outcome to record: `ok`, or
/// `client_error` for a request SES refuses. `here` is the request's scope; a batch
/// holding one of `refused` (the `invalid_identities` fault, empty when no fault
/// applies) is refused.
pub(crate) fn answer<'a>(
    action: &str,
    here: &Scope,
    identities: &[String],
    refused: &[String],
    get: impl Fn(&str) -> Option<&'a str>,
) -> (Response<MaybeBroken>, &'static str) {
    let resp = match action {
        "GetIdentityMailFromDomainAttributes"
        | "GetIdentityDkimAttributes"
        | "GetIdentityVerificationAttributes" => {
            if identities.len() > MAX_IDENTITIES {
                return (
                    error_xml(
                        StatusCode::BAD_REQUEST,
                        "Sender",
                        "InvalidParameterValue",
                        &format!(
                            "Identities: at most {MAX_IDENTITIES} identities per request, got {}",
                            identities.len()
                        ),
                    ),
                    "client_error",
                );
            }
            if let Some(bad) = identities.iter().find(|i| refused.contains(i)) {
                return (
                    error_xml(
                        StatusCode::BAD_REQUEST,
                        "Sender",
                        "InvalidParameterValue",
                        &format!("Invalid identity: {bad}"),
                    ),
                    "client_error",
                );
            }
            respond(
                StatusCode::OK,
                "text/xml",
                attributes_xml(action, &here.identities, identities),
            )
        }
        "GetSendQuota" => {
            let a = &here.account;
            let mut inner = String::new();
            for (field, value) in [
                ("Max24HourSend", a.max_24_hour_send),
                ("MaxSendRate", a.max_send_rate),
                ("SentLast24Hours", a.sent_last_24_hours),
            ] {
                if a.sends(field) {
                    inner.push_str(&format!("<{field}>{value:.1}</{field}>"));
                }
            }
            respond(StatusCode::OK, "text/xml", wrap(action, &inner))
        }
        "GetAccountSendingEnabled" => {
            let a = &here.account;
            let inner = if a.sends("Enabled") {
                format!("<Enabled>{}</Enabled>", a.sending_enabled)
            } else {
                String::new()
            };
            respond(StatusCode::OK, "text/xml", wrap(action, &inner))
        }
        "ListIdentities" => match list_xml(
            &here.identities,
            get("IdentityType"),
            get("MaxItems"),
            get("NextToken"),
        ) {
            Ok(body) => respond(StatusCode::OK, "text/xml", body),
            Err(msg) => {
                return (
                    error_xml(
                        StatusCode::BAD_REQUEST,
                        "Sender",
                        "InvalidParameterValue",
                        &msg,
                    ),
                    "client_error",
                );
            }
        },
        other => {
            return (
                error_xml(
                    StatusCode::BAD_REQUEST,
                    "Sender",
                    "InvalidAction",
                    &format!("The action {other} is not valid for this web service"),
                ),
                "client_error",
            );
        }
    };
    (resp, "ok")
}

/// An SES response: `<ActionResponse><ActionResult>inner</ActionResult>…`.
fn wrap(action: &str, inner: &str) -> String {
    wrap_in(XMLNS, action, inner)
}

/// The per-identity map of the three attribute operations.
fn attributes_xml(action: &str, store: &BTreeMap<String, Identity>, asked: &[String]) -> String {
    let mut entries = String::new();
    for name in asked {
        // Like SES and moto: identities it does not know are left out of the map.
        let Some(id) = store.get(name) else { continue };
        entries.push_str("<entry><key>");
        entries.push_str(&xml_escape(name));
        entries.push_str("</key><value>");
        match action {
            "GetIdentityDkimAttributes" => {
                if id.sends("DkimEnabled") {
                    entries.push_str(&format!(
                        "<DkimEnabled>{}</DkimEnabled>",
                        id.dkim_enabled.unwrap_or(false)
                    ));
                }
                if id.sends("DkimVerificationStatus") {
                    entries.push_str(&format!(
                        "<DkimVerificationStatus>{}</DkimVerificationStatus>",
                        xml_escape(id.dkim_status.as_deref().unwrap_or("NotStarted"))
                    ));
                }
                let tokens = id.dkim_tokens();
                if tokens.is_empty() {
                    entries.push_str("<DkimTokens/>");
                } else {
                    entries.push_str("<DkimTokens>");
                    for token in tokens {
                        entries.push_str(&format!("<member>{}</member>", xml_escape(token)));
                    }
                    entries.push_str("</DkimTokens>");
                }
            }
            "GetIdentityVerificationAttributes" => {
                if id.sends("VerificationStatus") {
                    entries.push_str(&format!(
                        "<VerificationStatus>{}</VerificationStatus>",
                        xml_escape(id.verification_status.as_deref().unwrap_or("Success"))
                    ));
                }
                entries.push_str("<VerificationToken>token</VerificationToken>");
            }
            _ => {
                // As SES: a domain and its status when a custom MAIL FROM is set, the
                // behaviour always. Each can be left out on its own (`omit`).
                let fields = [
                    ("MailFromDomain", id.mail_from_domain.as_deref()),
                    ("MailFromDomainStatus", id.status.as_deref()),
                    ("BehaviorOnMXFailure", id.behavior.as_deref()),
                ];
                for (field, value) in fields {
                    if let Some(v) = value.filter(|_| id.sends(field)) {
                        entries.push_str(&format!("<{field}>{}</{field}>", xml_escape(v)));
                    }
                }
            }
        }
        entries.push_str("</value></entry>");
    }
    let tag = match action {
        "GetIdentityDkimAttributes" => "DkimAttributes",
        "GetIdentityVerificationAttributes" => "VerificationAttributes",
        _ => "MailFromDomainAttributes",
    };
    let map = if entries.is_empty() {
        format!("<{tag}/>")
    } else {
        format!("<{tag}>{entries}</{tag}>")
    };
    wrap(action, &map)
}

fn list_xml(
    store: &BTreeMap<String, Identity>,
    identity_type: Option<&str>,
    max_items: Option<&str>,
    next_token: Option<&str>,
) -> Result<String, String> {
    let want_email = match identity_type {
        None | Some("") => None,
        Some("EmailAddress") => Some(true),
        Some("Domain") => Some(false),
        Some(other) => return Err(format!("IdentityType: invalid value {other:?}")),
    };
    let max = match max_items {
        None => MAX_LIST_ITEMS,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if (1..=MAX_LIST_ITEMS).contains(&n) => n,
            _ => {
                return Err(format!(
                    "MaxItems: must be 1 to {MAX_LIST_ITEMS}, got {m:?}"
                ))
            }
        },
    };
    let start = match next_token {
        None | Some("") => 0,
        Some(t) => t
            .strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| format!("NextToken: invalid token {t:?}"))?,
    };
    let matching: Vec<&String> = store
        .keys()
        .filter(|k| want_email.is_none_or(|e| k.contains('@') == e))
        .collect();
    let page: Vec<&&String> = matching.iter().skip(start).take(max).collect();
    let mut members = String::new();
    for name in &page {
        members.push_str(&format!("<member>{}</member>", xml_escape(name)));
    }
    let token = if start + page.len() < matching.len() {
        format!("<NextToken>page-{}</NextToken>", start + page.len())
    } else {
        String::new()
    };
    let list = if members.is_empty() {
        "<Identities/>".to_owned()
    } else {
        format!("<Identities>{members}</Identities>")
    };
    Ok(format!(
        "<ListIdentitiesResponse xmlns=\"{XMLNS}\"><ListIdentitiesResult>{list}{token}</ListIdentitiesResult>\
         <ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></ListIdentitiesResponse>",
        request_id()
    ))
}
