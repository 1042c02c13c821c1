//! SESv2's REST-JSON operations, from what the double holds in the request's scope:
//! which operation a method and path name ([`Request::parse`]), and the answers to
//! - `GetAccount`: `GET /v2/email/account`;
//! - `ListReputationEntities`: `POST /v2/email/reputation/entities`, JSON body
//!   `{"Filter", "NextToken", "PageSize"}`;
//! - `GetEmailIdentity`: `GET /v2/email/identities/{EmailIdentity}` (percent-encoded);
//!   `NotFoundException` (404) for an identity the scope does not hold;
//! - `ListEmailIdentities`: `POST /v2/email/list-identities` with the same JSON body
//!   (what aws-sdk-sesv2 sends), or `GET /v2/email/identities?PageSize=&NextToken=`
//!   (what older SDKs send).
//!
//! Both lists page at most [`MAX_PAGE_SIZE`] a page, [`DEFAULT_PAGE_SIZE`] when the
//! request names no size; a larger size is `BadRequestException` (400). Any other
//! `/v2/` request is `UnknownOperationException` (404). Values stored in SES's
//! CamelCase (`TemporaryFailure`) go out in SESv2's spelling (`TEMPORARY_FAILURE`);
//! timestamps are epoch seconds as JSON numbers, which is what the SDK reads; every
//! `omit` removes its keys wherever they are in the answer.

use std::collections::BTreeMap;

use http::{Method, Response, StatusCode, Uri};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::state::{Account, Identity, ReputationEntity, Scope};
use crate::wire::{error_json, json_response, percent_decode_path, MaybeBroken};

/// The largest `PageSize` of both list operations: SESv2's model says so for
/// `ListEmailIdentities` and names none for `ListReputationEntities`.
const MAX_PAGE_SIZE: usize = 1000;
/// The page size of a request that names none (or 0).
const DEFAULT_PAGE_SIZE: usize = 100;

/// One SESv2 request: its operation and parameters.
#[derive(Debug)]
pub(crate) enum Request {
    GetAccount,
    /// The identity's name, decoded.
    GetEmailIdentity(String),
    ListEmailIdentities(List),
    ListReputationEntities(List),
    /// A known operation whose parameters could not be read: `BadRequestException`.
    Unreadable {
        action: &'static str,
        message: String,
    },
    /// No operation the double knows at this method and path (`METHOD PATH`).
    Unknown(String),
}

/// The parameters of both list operations, from the JSON body or the query string.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct List {
    #[serde(rename = "Filter", default)]
    filter: BTreeMap<String, String>,
    #[serde(rename = "NextToken")]
    next_token: Option<String>,
    #[serde(rename = "PageSize")]
    page_size: Option<i64>,
}

impl Request {
    /// The operation a request names by its method and path, with its parameters.
    pub(crate) fn parse(method: &Method, uri: &Uri, body: &[u8]) -> Request {
        let path = uri.path();
        let from_body = |action: &'static str| {
            let list = if body.iter().all(u8::is_ascii_whitespace) {
                Ok(List::default())
            } else {
                serde_json::from_slice::<List>(body)
            };
            list.map_err(|e| Request::Unreadable {
                action,
                message: format!("invalid request body: {e}"),
            })
        };
        match (method, path) {
            (&Method::GET, "/v2/email/account") => Request::GetAccount,
            (&Method::POST, "/v2/email/reputation/entities") => {
                match from_body("ListReputationEntities") {
                    Ok(list) => Request::ListReputationEntities(list),
                    Err(unreadable) => unreadable,
                }
            }
            (&Method::POST, "/v2/email/list-identities") => {
                match from_body("ListEmailIdentities") {
                    Ok(list) => Request::ListEmailIdentities(list),
                    Err(unreadable) => unreadable,
                }
            }
            (&Method::GET, "/v2/email/identities") => list_from_query(uri.query()),
            (&Method::GET, _) => match path.strip_prefix("/v2/email/identities/") {
                Some(name) if !name.is_empty() && !name.contains('/') => {
                    Request::GetEmailIdentity(percent_decode_path(name))
                }
                _ => Request::Unknown(format!("{method} {path}")),
            },
            _ => Request::Unknown(format!("{method} {path}")),
        }
    }

    /// The operation's name, for the records, the rate limit and the faults.
    pub(crate) fn action(&self) -> &str {
        match self {
            Request::GetAccount => "GetAccount",
            Request::GetEmailIdentity(_) => "GetEmailIdentity",
            Request::ListEmailIdentities(_) => "ListEmailIdentities",
            Request::ListReputationEntities(_) => "ListReputationEntities",
            Request::Unreadable { action, .. } => action,
            Request::Unknown(what) => what,
        }
    }

    /// How many identities the request names.
    pub(crate) fn identities(&self) -> usize {
        usize::from(matches!(self, Request::GetEmailIdentity(_)))
    }
}

/// `ListEmailIdentities` the way older SDKs send it: `PageSize` and `NextToken` in
/// the query string.
fn list_from_query(query: Option<&str>) -> Request {
    let mut list = List::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "PageSize" => match value.parse() {
                Ok(n) => list.page_size = Some(n),
                Err(_) => {
                    return Request::Unreadable {
                        action: "ListEmailIdentities",
                        message: format!("PageSize: not a number: {value:?}"),
                    }
                }
            },
            "NextToken" => list.next_token = Some(value.into_owned()),
            _ => {}
        }
    }
    Request::ListEmailIdentities(list)
}

/// A request SESv2 refuses: its status, its code (`x-amzn-ErrorType`) and message.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn bad_request(message: String) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "BadRequestException",
            message,
        }
    }
}

/// The answer to one SESv2 request and the outcome to record: `ok`, or
/// `client_error` for a request SESv2 refuses. `here` is the request's scope; a
/// `GetEmailIdentity` of one of `refused` (the `invalid_identities` fault, empty
/// when no fault applies) is refused.
pub(crate) fn answer(
    req: &Request,
    here: &Scope,
    refused: &[String],
) -> (Response<MaybeBroken>, &'static str) {
    let body = match req {
        Request::GetAccount => Ok(account(&here.account)),
        Request::GetEmailIdentity(name) => email_identity(name, &here.identities, refused),
        Request::ListEmailIdentities(list) => email_identities(&here.identities, list),
        Request::ListReputationEntities(list) => {
            reputation_entities(&here.reputation_entities, list)
        }
        Request::Unreadable { message, .. } => Err(Refusal::bad_request(message.clone())),
        Request::Unknown(what) => Err(Refusal {
            status: StatusCode::NOT_FOUND,
            code: "UnknownOperationException",
            message: format!("no SESv2 operation at {what}"),
        }),
    };
    match body {
        Ok(body) => (json_response(StatusCode::OK, &body), "ok"),
        Err(r) => (error_json(r.status, r.code, &r.message), "client_error"),
    }
}

/// `GetAccount`'s answer.
fn account(a: &Account) -> Value {
    let mut details = json!({
        "MailType": "TRANSACTIONAL",
        "WebsiteURL": "https://www.example.com",
        "ContactLanguage": "EN",
    });
    let mut review = Map::new();
    put(&mut review, "Status", a.review_status.clone());
    put(&mut review, "CaseId", a.review_case_id.clone());
    if !review.is_empty() {
        details["ReviewDetails"] = Value::Object(review);
    }
    let body = json!({
        "EnforcementStatus": a.enforcement_status,
        "ProductionAccessEnabled": a.production_access_enabled,
        "SendingEnabled": a.sending_enabled,
        "DedicatedIpAutoWarmupEnabled": false,
        "SendQuota": {
            "Max24HourSend": a.max_24_hour_send,
            "MaxSendRate": a.max_send_rate,
            "SentLast24Hours": a.sent_last_24_hours,
        },
        "Details": details,
        "VdmAttributes": { "VdmEnabled": a.vdm_enabled },
    });
    without(body, &a.omit)
}

/// `GetEmailIdentity`'s answer.
fn email_identity(
    name: &str,
    store: &BTreeMap<String, Identity>,
    refused: &[String],
) -> Result<Value, Refusal> {
    if refused.iter().any(|r| r == name) {
        return Err(Refusal::bad_request(format!("Invalid identity: {name}")));
    }
    let id = store.get(name).ok_or_else(|| Refusal {
        status: StatusCode::NOT_FOUND,
        code: "NotFoundException",
        message: format!("Email identity {name} does not exist."),
    })?;
    // SES makes DKIM tokens for domains only (Easy DKIM).
    let tokens = if id.dkim_tokens.is_none() && is_address(name) {
        Vec::new()
    } else {
        id.dkim_tokens()
    };
    let mut mail_from = Map::new();
    put(
        &mut mail_from,
        "MailFromDomain",
        id.mail_from_domain.clone(),
    );
    put(
        &mut mail_from,
        "MailFromDomainStatus",
        id.status.as_deref().map(upper_snake),
    );
    put(
        &mut mail_from,
        "BehaviorOnMxFailure",
        id.behavior.as_deref().map(upper_snake),
    );
    let mut info = Map::new();
    put(&mut info, "ErrorType", id.verification_error_type.clone());
    put(
        &mut info,
        "LastCheckedTimestamp",
        id.verification_last_checked.map(epoch),
    );
    put(
        &mut info,
        "LastSuccessTimestamp",
        id.verification_last_success.map(epoch),
    );
    let mut body = json!({
        "IdentityType": identity_type(name),
        "FeedbackForwardingStatus": true,
        "VerifiedForSendingStatus": sending_enabled(id),
        "VerificationStatus": verification_status(id),
        "DkimAttributes": {
            "SigningEnabled": id.dkim_enabled.unwrap_or(false),
            "Status": upper_snake(id.dkim_status.as_deref().unwrap_or("NotStarted")),
            "Tokens": tokens,
            "SigningAttributesOrigin": id.signing_origin.as_deref().unwrap_or("AWS_SES"),
            "SigningHostedZone":
                id.signing_hosted_zone.as_deref().unwrap_or("dkim.amazonses.com"),
        },
        "MailFromAttributes": mail_from,
        "Policies": {},
        "Tags": [],
    });
    if !info.is_empty() {
        body["VerificationInfo"] = Value::Object(info);
    }
    Ok(without(body, &id.omit))
}

/// `ListEmailIdentities`' answer: the identities in name order, filtered and paged.
fn email_identities(store: &BTreeMap<String, Identity>, list: &List) -> Result<Value, Refusal> {
    let size = page_size(list.page_size)?;
    check_filter(
        &list.filter,
        &[
            "IDENTITY_TYPE",
            "VERIFICATION_STATUS",
            "IDENTITY_NAME_CONTAINS",
        ],
    )?;
    let matching = store.iter().filter(|(name, id)| {
        list.filter.iter().all(|(key, want)| match key.as_str() {
            "IDENTITY_TYPE" => identity_type(name) == want,
            "VERIFICATION_STATUS" => verification_status(id) == *want,
            _ => name.contains(want.as_str()),
        })
    });
    let (page, next) = paginate(matching.collect(), list.next_token.as_deref(), size)?;
    let entries: Vec<Value> = page
        .into_iter()
        .map(|(name, id)| {
            let entry = json!({
                "IdentityType": identity_type(name),
                "IdentityName": name,
                "SendingEnabled": sending_enabled(id),
                "VerificationStatus": verification_status(id),
            });
            without(entry, &id.omit)
        })
        .collect();
    let mut body = json!({ "EmailIdentities": entries });
    if let Some(token) = next {
        body["NextToken"] = Value::String(token);
    }
    Ok(body)
}

/// `ListReputationEntities`' answer: the entities in the order they were set,
/// filtered and paged.
fn reputation_entities(all: &[ReputationEntity], list: &List) -> Result<Value, Refusal> {
    let size = page_size(list.page_size)?;
    check_filter(
        &list.filter,
        &[
            "ENTITY_TYPE",
            "REPUTATION_IMPACT",
            "SENDING_STATUS",
            "ENTITY_REFERENCE_PREFIX",
        ],
    )?;
    let matching = all.iter().filter(|e| {
        list.filter.iter().all(|(key, want)| match key.as_str() {
            "ENTITY_TYPE" => entity_type(e) == want,
            "REPUTATION_IMPACT" => e.impact.as_ref() == Some(want),
            "SENDING_STATUS" => e.aggregate() == want,
            _ => e.reference.starts_with(want.as_str()),
        })
    });
    let (page, next) = paginate(matching.collect(), list.next_token.as_deref(), size)?;
    let entries: Vec<Value> = page.into_iter().map(reputation_entity).collect();
    let mut body = json!({ "ReputationEntities": entries });
    if let Some(token) = next {
        body["NextToken"] = Value::String(token);
    }
    Ok(body)
}

fn reputation_entity(e: &ReputationEntity) -> Value {
    let record = |status: &Option<String>, cause: &Option<String>, updated: Option<f64>| {
        let mut m = Map::new();
        m.insert(
            "Status".into(),
            status.as_deref().unwrap_or("ENABLED").into(),
        );
        put(&mut m, "Cause", cause.clone());
        put(&mut m, "LastUpdatedTimestamp", updated.map(epoch));
        Value::Object(m)
    };
    let mut m = Map::new();
    m.insert(
        "ReputationEntityReference".into(),
        e.reference.clone().into(),
    );
    m.insert("ReputationEntityType".into(), entity_type(e).into());
    put(&mut m, "ReputationManagementPolicy", e.policy.clone());
    m.insert(
        "CustomerManagedStatus".into(),
        record(&e.customer_status, &e.customer_cause, e.customer_updated),
    );
    m.insert(
        "AwsSesManagedStatus".into(),
        record(&e.ses_status, &e.ses_cause, e.ses_updated),
    );
    m.insert("SendingStatusAggregate".into(), e.aggregate().into());
    put(&mut m, "ReputationImpact", e.impact.clone());
    without(Value::Object(m), &e.omit)
}

fn entity_type(e: &ReputationEntity) -> &str {
    e.entity_type.as_deref().unwrap_or("RESOURCE")
}

fn is_address(name: &str) -> bool {
    name.contains('@')
}

fn identity_type(name: &str) -> &'static str {
    if is_address(name) {
        "EMAIL_ADDRESS"
    } else {
        "DOMAIN"
    }
}

/// `VerificationStatus` in SESv2's spelling; `SUCCESS` when not set.
fn verification_status(id: &Identity) -> String {
    upper_snake(id.verification_status.as_deref().unwrap_or("Success"))
}

/// `VerifiedForSendingStatus` and `SendingEnabled`: as set, or whether the identity
/// is verified.
fn sending_enabled(id: &Identity) -> bool {
    id.sending_enabled
        .unwrap_or_else(|| verification_status(id) == "SUCCESS")
}

/// SES's CamelCase value in SESv2's spelling (`TemporaryFailure` →
/// `TEMPORARY_FAILURE`); a value without lower-case letters is sent as it is.
fn upper_snake(value: &str) -> String {
    if !value.chars().any(|c| c.is_ascii_lowercase()) {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 4);
    let mut prev_lower = false;
    for c in value.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// A timestamp as SESv2 sends it: epoch seconds, a JSON number (whole seconds
/// without a fraction).
fn epoch(t: f64) -> Value {
    if t.fract() == 0.0 && t.abs() < 1e15 {
        Value::from(t as i64)
    } else {
        Value::from(t)
    }
}

/// Adds `key` to `map` when there is a value.
fn put(map: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v.into());
    }
}

/// `value` without the keys in `omit`, wherever they are.
fn without(mut value: Value, omit: &[String]) -> Value {
    fn strip(value: &mut Value, omit: &[String]) {
        match value {
            Value::Object(map) => {
                map.retain(|key, _| !omit.contains(key));
                map.values_mut().for_each(|v| strip(v, omit));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| strip(v, omit)),
            _ => {}
        }
    }
    if !omit.is_empty() {
        strip(&mut value, omit);
    }
    value
}

/// The page size a request asks for: 1 to [`MAX_PAGE_SIZE`], or the default when
/// it names none (or 0, which the model allows).
fn page_size(asked: Option<i64>) -> Result<usize, Refusal> {
    match asked {
        None | Some(0) => Ok(DEFAULT_PAGE_SIZE),
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| *n <= MAX_PAGE_SIZE)
            .ok_or_else(|| {
                Refusal::bad_request(format!("PageSize: must be 0 to {MAX_PAGE_SIZE}, got {n}"))
            }),
    }
}

/// Refuses a filter with a key the operation does not know.
fn check_filter(filter: &BTreeMap<String, String>, known: &[&str]) -> Result<(), Refusal> {
    match filter.keys().find(|k| !known.contains(&k.as_str())) {
        Some(bad) => Err(Refusal::bad_request(format!("Filter: unknown key {bad:?}"))),
        None => Ok(()),
    }
}

/// One page of `items` from the position `token` names (`page-N`, N items in),
/// and the token of the next page if there is one.
fn paginate<T>(
    items: Vec<T>,
    token: Option<&str>,
    size: usize,
) -> Result<(Vec<T>, Option<String>), Refusal> {
    let start = match token {
        None | Some("") => 0,
        Some(t) => t
            .strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| Refusal::bad_request(format!("NextToken: invalid token {t:?}")))?,
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(size).collect();
    let end = start + page.len();
    Ok((page, (end < total).then(|| format!("page-{end}"))))
}
