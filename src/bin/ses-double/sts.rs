//! STS's two operations and their XML, in STS's namespace: `GetCallerIdentity`,
//! and `AssumeRole` (which requires the external ID `PUT /_double/roles/ARN` set for
//! a role, if any). Also the keys `AssumeRole` hands out, which name the role's
//! account, so that requests signed with them are that account's.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use http::{Response, StatusCode};

use crate::server::credential;
use crate::state::Role;
use crate::wire::{error_xml, respond, wrap_in, xml_escape, MaybeBroken};

/// `GetCallerIdentity` of a request in `scope` (account, region), with the outcome
/// to record (always `ok`).
pub(crate) fn caller_identity(
    parts: &http::request::Parts,
    scope: &(String, String),
) -> (Response<MaybeBroken>, &'static str) {
    let key = caller_key(parts);
    let arn = match account_of_key(&key) {
        Some(account) => {
            format!("arn:aws:sts::{account}:assumed-role/double-role/session")
        }
        None => format!("arn:aws:iam::{}:user/double-user", scope.0),
    };
    let resp = respond(
        StatusCode::OK,
        "text/xml",
        sts_wrap(
            "GetCallerIdentity",
            &format!(
                "<Arn>{}</Arn><UserId>{key}</UserId><Account>{}</Account>",
                xml_escape(&arn),
                scope.0
            ),
        ),
    );
    (resp, "ok")
}

/// `AssumeRole`, with the outcome to record: `ok`, or `client_error` for an invalid
/// role or session name, or an external ID other than the one `roles` requires.
pub(crate) fn assume_role<'a>(
    roles: &BTreeMap<String, Role>,
    get: impl Fn(&str) -> Option<&'a str>,
) -> (Response<MaybeBroken>, &'static str) {
    let arn = get("RoleArn").unwrap_or("");
    let session = get("RoleSessionName").unwrap_or("");
    let role_account = arn.split(':').nth(4).unwrap_or("");
    if role_account.len() != 12
        || !role_account.bytes().all(|b| b.is_ascii_digit())
        || session.is_empty()
    {
        return (
            error_xml(
                StatusCode::BAD_REQUEST,
                "Sender",
                "ValidationError",
                "invalid RoleArn or RoleSessionName",
            ),
            "client_error",
        );
    }
    if let Some(role) = roles.get(arn) {
        if role.external_id.as_deref() != get("ExternalId") {
            return (
                error_xml(
                    StatusCode::FORBIDDEN,
                    "Sender",
                    "AccessDenied",
                    &format!(
                        "User is not authorized to perform: sts:AssumeRole on resource: {arn}"
                    ),
                ),
                "client_error",
            );
        }
    }
    let expires = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600));
    let name = arn.rsplit('/').next().unwrap_or("role");
    let resp = respond(
        StatusCode::OK,
        "text/xml",
        sts_wrap(
            "AssumeRole",
            &format!(
                "<Credentials><AccessKeyId>ASIA{role_account}{:04}</AccessKeyId>\
                 <SecretAccessKey>double-secret</SecretAccessKey>\
                 <SessionToken>double-session-token</SessionToken>\
                 <Expiration>{expires}</Expiration></Credentials>\
                 <AssumedRoleUser><AssumedRoleId>AROADOUBLE:{}</AssumedRoleId>\
                 <Arn>arn:aws:sts::{role_account}:assumed-role/{}/{}</Arn></AssumedRoleUser>",
                rand::random::<u16>() % 10_000,
                xml_escape(session),
                xml_escape(name),
                xml_escape(session)
            ),
        ),
    );
    (resp, "ok")
}

/// The access key a request was signed with.
fn caller_key(parts: &http::request::Parts) -> String {
    credential(parts).split('/').next().unwrap_or("").to_owned()
}

/// The account a key `AssumeRole` handed out belongs to (`ASIA` + 12 digits + 4).
pub(crate) fn account_of_key(key: &str) -> Option<&str> {
    let account = key.strip_prefix("ASIA")?.get(..12)?;
    account
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then_some(account)
}

/// An STS response, in STS's namespace.
fn sts_wrap(action: &str, inner: &str) -> String {
    wrap_in("https://sts.amazonaws.com/doc/2011-06-15/", action, inner)
}
