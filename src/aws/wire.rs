//! The bodies of SES's (v1) successful Query answers, read from the raw XML so that a field SES
//! left out stays "not said" instead of becoming a default. Pure: one reader per operation,
//! given the raw body of a success by [`super::sdk`].
//!
//! Why our own parse: for the fields SES's model marks required (`DkimEnabled`, `Enabled`,
//! the three quota numbers, the MAIL FROM domain) the SDK's output fills a missing one with
//! a default (`false`, `0.0`, `""`), which the exporter would then publish as a fact:
//! sending "disabled", a quota of 0, "no custom MAIL FROM".

use std::collections::HashMap;

use roxmltree::{Document, Node};

use crate::model::{
    BehaviorOnMxFailure, DkimAttributes, MailFromAttributes, MailFromStatus, SendQuota,
    Verification, VerificationStatus,
};

/// An answer whose body is not what the operation returns.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the answer is not XML: {0}")]
    Xml(#[from] roxmltree::Error),
    #[error("the answer is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the answer has no <{0}> element")]
    Missing(String),
    #[error("<{field}> holds {value:?}, not a {kind}")]
    Invalid {
        field: &'static str,
        value: String,
        kind: &'static str,
    },
}

/// `GetIdentityMailFromDomainAttributes`: identity → its MAIL FROM attributes.
pub fn mail_from(body: &str) -> Result<HashMap<String, MailFromAttributes>, WireError> {
    attribute_map(
        body,
        "GetIdentityMailFromDomainAttributes",
        "MailFromDomainAttributes",
        |value| {
            Ok(MailFromAttributes {
                domain: text(value, "MailFromDomain")
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned),
                status: text(value, "MailFromDomainStatus").map(MailFromStatus::parse),
                behavior: text(value, "BehaviorOnMXFailure")
                    .map_or(BehaviorOnMxFailure::Unknown, BehaviorOnMxFailure::parse),
            })
        },
    )
}

/// `GetIdentityDkimAttributes`: identity → whether DKIM signs and its status.
pub fn dkim(body: &str) -> Result<HashMap<String, DkimAttributes>, WireError> {
    attribute_map(
        body,
        "GetIdentityDkimAttributes",
        "DkimAttributes",
        |value| {
            Ok(DkimAttributes {
                enabled: boolean(value, "DkimEnabled")?,
                status: status(value, "DkimVerificationStatus"),
                tokens: members(value, "DkimTokens"),
            })
        },
    )
}

/// `GetIdentityVerificationAttributes`: identity → its verification status.
pub fn verification(body: &str) -> Result<HashMap<String, Verification>, WireError> {
    attribute_map(
        body,
        "GetIdentityVerificationAttributes",
        "VerificationAttributes",
        |value| {
            Ok(Verification {
                status: status(value, "VerificationStatus"),
                token: text(value, "VerificationToken")
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
            })
        },
    )
}

/// An identity-attributes answer: each `entry` of `<map>` in `<action>Result`, its
/// `value` read by `read`. One unreadable value fails the whole answer (a value
/// guessed for one identity would be a value invented).
fn attribute_map<T>(
    body: &str,
    action: &str,
    map: &str,
    read: impl Fn(Node<'_, '_>) -> Result<T, WireError>,
) -> Result<HashMap<String, T>, WireError> {
    let doc = Document::parse(body)?;
    let out = entries(&doc, action, map)?
        .map(|(identity, value)| Ok((identity, read(value)?)))
        .collect();
    out
}

/// `GetSendQuota`: each number `None` when SES left it out.
pub fn send_quota(body: &str) -> Result<SendQuota, WireError> {
    let doc = Document::parse(body)?;
    let result = result(&doc, "GetSendQuota")?;
    Ok(SendQuota {
        max_24_hour_send: number(result, "Max24HourSend")?,
        max_send_rate: number(result, "MaxSendRate")?,
        sent_last_24_hours: number(result, "SentLast24Hours")?,
    })
}

/// `GetAccountSendingEnabled`: `None` when SES left `Enabled` out.
pub fn sending_enabled(body: &str) -> Result<Option<bool>, WireError> {
    let doc = Document::parse(body)?;
    boolean(result(&doc, "GetAccountSendingEnabled")?, "Enabled")
}

/// The `<ActionResult>` element under the root `<ActionResponse>`.
fn result<'a, 'i>(doc: &'a Document<'i>, action: &str) -> Result<Node<'a, 'i>, WireError> {
    let name = format!("{action}Result");
    child(doc.root_element(), &name).ok_or(WireError::Missing(name))
}

/// The `<entry><key/><value/></entry>` pairs of the result's map `map`. An empty
/// map is written `<Map/>`; a map element that is absent altogether is an answer
/// that is not this operation's.
fn entries<'a, 'i>(
    doc: &'a Document<'i>,
    action: &str,
    map: &str,
) -> Result<impl Iterator<Item = (String, Node<'a, 'i>)>, WireError> {
    let map_node =
        child(result(doc, action)?, map).ok_or_else(|| WireError::Missing(map.into()))?;
    Ok(map_node
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "entry")
        .filter_map(|entry| {
            let key = text(entry, "key")?;
            let value = child(entry, "value")?;
            Some((key.to_owned(), value))
        }))
}

/// The first child element named `name` (local name: SES's and moto's namespaces
/// differ in form, not in names).
fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

/// The trimmed text of child `name`; `None` when the element is absent. An element
/// that is present but empty is `Some("")`.
fn text<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name).map(|n| n.text().unwrap_or("").trim())
}

/// The texts of the `<member>` elements of list `name`; empty when the list is absent.
fn members(node: Node<'_, '_>, name: &str) -> Vec<String> {
    child(node, name).map_or_else(Vec::new, |list| {
        list.children()
            .filter(|n| n.is_element() && n.tag_name().name() == "member")
            .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
            .filter(|t| !t.is_empty())
            .collect()
    })
}

fn status(node: Node<'_, '_>, name: &str) -> VerificationStatus {
    text(node, name).map_or(VerificationStatus::Unknown, VerificationStatus::parse)
}

fn boolean(node: Node<'_, '_>, field: &'static str) -> Result<Option<bool>, WireError> {
    match text(node, field) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(WireError::Invalid {
            field,
            value: other.to_owned(),
            kind: "boolean",
        }),
    }
}

fn number(node: Node<'_, '_>, field: &'static str) -> Result<Option<f64>, WireError> {
    match text(node, field) {
        None => Ok(None),
        Some(v) => match v.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Some(n)),
            _ => Err(WireError::Invalid {
                field,
                value: v.to_owned(),
                kind: "number",
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "http://ses.amazonaws.com/doc/2010-12-01/";

    fn wrap(action: &str, inner: &str) -> String {
        format!(
            "<{action}Response xmlns=\"{NS}\">\n  <{action}Result>{inner}</{action}Result>\n  \
             <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>\n</{action}Response>"
        )
    }

    fn mail_from_body(value: &str) -> String {
        wrap(
            "GetIdentityMailFromDomainAttributes",
            &format!(
                "<MailFromDomainAttributes><entry><key>example.com</key><value>{value}</value></entry></MailFromDomainAttributes>"
            ),
        )
    }

    #[test]
    fn a_full_mail_from_answer() {
        let body = mail_from_body(
            "<MailFromDomain>bounce.example.com</MailFromDomain>\
             <MailFromDomainStatus>Failed</MailFromDomainStatus>\
             <BehaviorOnMXFailure>RejectMessage</BehaviorOnMXFailure>",
        );
        let a = &mail_from(&body).unwrap()["example.com"];
        assert_eq!(a.domain.as_deref(), Some("bounce.example.com"));
        assert_eq!(a.status, Some(MailFromStatus::Failed));
        assert_eq!(a.behavior, BehaviorOnMxFailure::RejectMessage);
        assert!(a.configured());
    }

    #[test]
    fn no_custom_mail_from_is_behavior_alone() {
        let body = mail_from_body("<BehaviorOnMXFailure>UseDefaultValue</BehaviorOnMXFailure>");
        let a = &mail_from(&body).unwrap()["example.com"];
        assert!(!a.configured());
        assert_eq!(a.behavior, BehaviorOnMxFailure::UseDefaultValue);
    }

    #[test]
    fn a_status_without_a_domain_is_a_configured_mail_from_with_an_unknown_domain() {
        let body = mail_from_body(
            "<MailFromDomainStatus>Failed</MailFromDomainStatus>\
             <BehaviorOnMXFailure>RejectMessage</BehaviorOnMXFailure>",
        );
        let a = &mail_from(&body).unwrap()["example.com"];
        assert!(a.configured(), "the SDK would read this as no MAIL FROM");
        assert_eq!(a.domain, None);
        assert_eq!(a.status, Some(MailFromStatus::Failed));
    }

    #[test]
    fn missing_status_and_behavior_are_unknown_not_guessed() {
        let body = mail_from_body("<MailFromDomain>bounce.example.com</MailFromDomain>");
        let a = &mail_from(&body).unwrap()["example.com"];
        assert!(a.configured());
        assert_eq!(a.status, None);
        assert_eq!(a.behavior, BehaviorOnMxFailure::Unknown);
    }

    #[test]
    fn an_empty_map_and_a_missing_map() {
        let empty = wrap(
            "GetIdentityMailFromDomainAttributes",
            "<MailFromDomainAttributes/>",
        );
        assert!(mail_from(&empty).unwrap().is_empty());
        let wrong = wrap("GetIdentityMailFromDomainAttributes", "");
        let err = mail_from(&wrong).unwrap_err();
        assert!(
            err.to_string().contains("MailFromDomainAttributes"),
            "{err}"
        );
        assert!(mail_from("<Broken").is_err());
    }

    #[test]
    fn dkim_enabled_is_absent_when_left_out_and_a_bad_boolean_is_an_error() {
        let body = |inner: &str| {
            wrap(
                "GetIdentityDkimAttributes",
                &format!("<DkimAttributes><entry><key>example.com</key><value>{inner}</value></entry></DkimAttributes>"),
            )
        };
        let a = dkim(&body(
            "<DkimVerificationStatus>Success</DkimVerificationStatus>",
        ))
        .unwrap();
        assert_eq!(a["example.com"].enabled, None);
        assert_eq!(a["example.com"].status, VerificationStatus::Success);
        let a = dkim(&body("<DkimEnabled>true</DkimEnabled>")).unwrap();
        assert_eq!(a["example.com"].enabled, Some(true));
        assert_eq!(a["example.com"].status, VerificationStatus::Unknown);
        let err = dkim(&body("<DkimEnabled>yes</DkimEnabled>")).unwrap_err();
        assert!(err.to_string().contains("DkimEnabled"), "{err}");
    }

    #[test]
    fn verification_status_left_out_is_unknown() {
        let body = wrap(
            "GetIdentityVerificationAttributes",
            "<VerificationAttributes><entry><key>a@example.com</key><value><VerificationToken>t</VerificationToken></value></entry></VerificationAttributes>",
        );
        let v = verification(&body).unwrap();
        assert_eq!(v["a@example.com"].status, VerificationStatus::Unknown);
    }

    #[test]
    fn quota_numbers_and_sending_enabled_left_out_are_none() {
        let q = send_quota(&wrap(
            "GetSendQuota",
            "<Max24HourSend>200.0</Max24HourSend><SentLast24Hours>3.0</SentLast24Hours>",
        ))
        .unwrap();
        assert_eq!(q.max_24_hour_send, Some(200.0));
        assert_eq!(q.max_send_rate, None);
        assert_eq!(q.sent_last_24_hours, Some(3.0));
        assert!(send_quota(&wrap("GetSendQuota", "<MaxSendRate>NaN</MaxSendRate>")).is_err());
        assert_eq!(
            sending_enabled(&wrap(
                "GetAccountSendingEnabled",
                "<Enabled>false</Enabled>"
            ))
            .unwrap(),
            Some(false)
        );
        assert_eq!(
            sending_enabled(&wrap("GetAccountSendingEnabled", "")).unwrap(),
            None
        );
    }

    #[test]
    fn escaped_keys_are_unescaped() {
        let body = wrap(
            "GetIdentityVerificationAttributes",
            "<VerificationAttributes><entry><key>a&amp;b@example.com</key><value><VerificationStatus>Success</VerificationStatus></value></entry></VerificationAttributes>",
        );
        assert!(verification(&body).unwrap().contains_key("a&b@example.com"));
    }
}
