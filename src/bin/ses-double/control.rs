//! The control API under `/_double/`, plain JSON over HTTP (the crate's doc says
//! what each takes):
//! - `GET`, `DELETE` `/_double/requests`: the request records;
//! - `GET`, `PUT` `/_double/faults`: the faults in force;
//! - `GET` `/_double/identities`, `PUT`, `DELETE` `/_double/identities/NAME`;
//! - `PUT` `/_double/account`: the account-level answers;
//! - `GET`, `PUT` `/_double/reputation-entities`: SESv2's reputation entities;
//! - `PUT` `/_double/roles/ARN`: the roles `AssumeRole` checks.
//!
//! Identity, account and reputation-entity paths act on the scope
//! `?account=ID&region=NAME` names (default the home scope: `--account`, `--region`).

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::faults::Faults;
use crate::state::{Account, Double, Identity, ReputationEntity, Role};
use crate::wire::{percent_decode_path, respond, MaybeBroken};

impl Double {
    pub(crate) async fn control(&self, req: Request<Incoming>) -> Response<MaybeBroken> {
        let path = req.uri().path().to_owned();
        // `?account=…&region=…` picks the account and region; default the home scope.
        let query: Vec<(String, String)> =
            form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let pick = |k: &str, default: &str| {
            query
                .iter()
                .find(|(key, _)| key == k)
                .map_or_else(|| default.to_owned(), |(_, v)| v.clone())
        };
        let scope = (pick("account", &self.account), pick("region", &self.region));
        let method = req.method().clone();
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let json = |v: &dyn erased::Json| respond(StatusCode::OK, "application/json", v.to_json());
        match (method, path.as_str()) {
            (Method::GET, "/_double/requests") => json(&self.lock().records.clone()),
            (Method::DELETE, "/_double/requests") => {
                self.lock().records.clear();
                respond(StatusCode::NO_CONTENT, "text/plain", "")
            }
            (Method::GET, "/_double/faults") => json(&self.lock().faults.clone()),
            (Method::PUT, "/_double/faults") => match serde_json::from_slice::<Faults>(&body) {
                Ok(f) => {
                    let mut st = self.lock();
                    st.faults = f;
                    st.errors_sent = 0;
                    respond(StatusCode::NO_CONTENT, "text/plain", "")
                }
                Err(e) => respond(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    format!("bad faults: {e}\n"),
                ),
            },
            (Method::GET, "/_double/identities") => {
                let st = self.lock();
                json(
                    &st.scopes
                        .get(&scope)
                        .map(|s| s.identities.clone())
                        .unwrap_or_default(),
                )
            }
            (Method::PUT, "/_double/account") => match serde_json::from_slice::<Account>(&body) {
                Ok(a) => {
                    self.lock().scopes.entry(scope).or_default().account = a;
                    respond(StatusCode::NO_CONTENT, "text/plain", "")
                }
                Err(e) => respond(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    format!("bad account: {e}\n"),
                ),
            },
            (Method::GET, "/_double/reputation-entities") => {
                let st = self.lock();
                json(
                    &st.scopes
                        .get(&scope)
                        .map(|s| s.reputation_entities.clone())
                        .unwrap_or_default(),
                )
            }
            (Method::PUT, "/_double/reputation-entities") => {
                match serde_json::from_slice::<Vec<ReputationEntity>>(&body) {
                    Ok(entities) => {
                        self.lock()
                            .scopes
                            .entry(scope)
                            .or_default()
                            .reputation_entities = entities;
                        respond(StatusCode::NO_CONTENT, "text/plain", "")
                    }
                    Err(e) => respond(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        format!("bad reputation entities: {e}\n"),
                    ),
                }
            }
            (Method::PUT, p) if p.starts_with("/_double/roles/") => {
                let arn = percent_decode_path(&p["/_double/roles/".len()..]);
                match serde_json::from_slice::<Role>(&body) {
                    Ok(role) => {
                        self.lock().roles.insert(arn, role);
                        respond(StatusCode::NO_CONTENT, "text/plain", "")
                    }
                    Err(e) => respond(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        format!("bad role: {e}\n"),
                    ),
                }
            }
            (method, p) if p.starts_with("/_double/identities/") => {
                let raw = &p["/_double/identities/".len()..];
                let name: String = percent_decode_path(raw);
                match method {
                    Method::PUT => match serde_json::from_slice::<Identity>(&body) {
                        Ok(id) => {
                            self.lock()
                                .scopes
                                .entry(scope)
                                .or_default()
                                .identities
                                .insert(name, id);
                            respond(StatusCode::NO_CONTENT, "text/plain", "")
                        }
                        Err(e) => respond(
                            StatusCode::BAD_REQUEST,
                            "text/plain",
                            format!("bad identity: {e}\n"),
                        ),
                    },
                    Method::DELETE => {
                        if let Some(s) = self.lock().scopes.get_mut(&scope) {
                            s.identities.remove(&name);
                        }
                        respond(StatusCode::NO_CONTENT, "text/plain", "")
                    }
                    _ => respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", ""),
                }
            }
            _ => respond(
                StatusCode::NOT_FOUND,
                "text/plain",
                "unknown control path\n",
            ),
        }
    }
}

/// Tiny indirection so `control` can serialise different types with one closure.
mod erased {
    pub trait Json {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).unwrap_or_else(|_| "null".into())
        }
    }
}
