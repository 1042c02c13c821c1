//! The scripted AWS double ([`Scripted`]), one [`Aws`] for the unit and integration tests
//! alike (feature `test-support`): each [`Request`] answered from a queue per operation,
//! else a [`Hook`], else [`default_answer`]; every [`Call`] recorded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use tokio::time::Instant;

use crate::aws::{
    Aws, CallerIdentity, IdentityPage, Operation, Reply, Request, Response, SesError, TargetAws,
};
use crate::model::SendQuota;

/// One call the double received, at its time on tokio's clock (so paused-time tests
/// see exact spacing).
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub operation: Operation,
    /// The identities asked about (empty for account-level operations).
    pub identities: Vec<String>,
}

/// Answers a request instead of the queue and the default, when it returns `Some`:
/// a future, so that an answer can be slow, never come, or panic.
pub type Hook =
    dyn Fn(&Request<'_>) -> Option<BoxFuture<'static, Result<Response, SesError>>> + Send + Sync;

#[derive(Default)]
struct Script {
    queued: HashMap<Operation, VecDeque<Result<Response, SesError>>>,
    calls: Vec<Call>,
    /// A batch holding this identity is refused with `InvalidParameterValue`.
    invalid: Option<String>,
    /// STS refuses this many calls (AccessDenied) before it answers.
    sts_refusals: usize,
    hook: Option<Arc<Hook>>,
}

/// A scripted AWS of one account and region.
pub struct Scripted {
    region: String,
    account: String,
    script: Mutex<Script>,
}

impl Scripted {
    pub fn new(region: &str, account: &str) -> Arc<Scripted> {
        Arc::new(Scripted {
            region: region.to_owned(),
            account: account.to_owned(),
            script: Mutex::new(Script::default()),
        })
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues the next answer of the response's operation.
    pub fn then(&self, answer: Response) {
        let op = answer.operation();
        self.then_result(op, Ok(answer));
    }

    /// Queues the next answer of `op`, a failure or not.
    pub fn then_result(&self, op: Operation, answer: Result<Response, SesError>) {
        self.script()
            .queued
            .entry(op)
            .or_default()
            .push_back(answer);
    }

    /// Queues a `GetIdentityMailFromDomainAttributes` answer holding `answer`.
    pub fn then_mail_from<I>(&self, answer: I)
    where
        I: IntoIterator<Item = (String, crate::model::MailFromAttributes)>,
    {
        self.then(Response::GetIdentityMailFromDomainAttributes(
            answer.into_iter().collect(),
        ));
    }

    /// Refuses every batch holding `identity` (or none) as SES refuses an invalid
    /// identity.
    pub fn refuse_identity(&self, identity: Option<&str>) {
        self.script().invalid = identity.map(str::to_owned);
    }

    /// STS refuses the next `n` calls.
    pub fn refuse_sts(&self, n: usize) {
        self.script().sts_refusals = n;
    }

    /// Consulted for every request before the queue.
    pub fn answer_with(
        &self,
        hook: impl Fn(&Request<'_>) -> Option<BoxFuture<'static, Result<Response, SesError>>>
            + Send
            + Sync
            + 'static,
    ) {
        self.script().hook = Some(Arc::new(hook));
    }

    /// The calls of `op` so far, in order.
    pub fn calls(&self, op: Operation) -> Vec<Call> {
        self.script()
            .calls
            .iter()
            .filter(|c| c.operation == op)
            .cloned()
            .collect()
    }

    pub fn clear_calls(&self) {
        self.script().calls.clear();
    }
}

impl Aws for Scripted {
    fn call<'a>(&'a self, request: Request<'a>) -> Reply<'a, Response> {
        let op = request.operation();
        let identities = identities(&request);
        // Decided under the lock, answered after it: a hook's future may wait.
        let (hook, queued, refused) = {
            let mut script = self.script();
            script.calls.push(Call {
                at: Instant::now(),
                operation: op,
                identities: identities.clone(),
            });
            let refused = script
                .invalid
                .clone()
                .filter(|bad| identities.contains(bad));
            let hook = script.hook.clone().and_then(|hook| hook(&request));
            let queued = match (&hook, &refused) {
                (None, None) => script.queued.get_mut(&op).and_then(VecDeque::pop_front),
                _ => None,
            };
            (hook, queued, refused)
        };
        Box::pin(async move {
            if let Some(bad) = refused {
                return Err(SesError::Client {
                    code: "InvalidParameterValue".into(),
                    status: 400,
                    message: format!("Invalid identity: {bad}"),
                });
            }
            if let Some(answer) = hook {
                return answer.await;
            }
            queued.unwrap_or_else(|| Ok(default_answer(&request)))
        })
    }
}

impl TargetAws for Scripted {
    fn region(&self) -> &str {
        &self.region
    }

    fn caller_identity(&self) -> Reply<'_, CallerIdentity> {
        let refuse = {
            let mut script = self.script();
            let refuse = script.sts_refusals > 0;
            script.sts_refusals = script.sts_refusals.saturating_sub(1);
            refuse
        };
        Box::pin(async move {
            if refuse {
                return Err(SesError::Client {
                    code: "AccessDenied".into(),
                    status: 403,
                    message: "not yet".into(),
                });
            }
            Ok(CallerIdentity {
                account: self.account.clone(),
                arn: format!("arn:aws:iam::{}:user/test", self.account),
            })
        })
    }
}

/// The identities a request asks about.
fn identities(request: &Request<'_>) -> Vec<String> {
    match request {
        Request::GetIdentityMailFromDomainAttributes { identities }
        | Request::GetIdentityDkimAttributes { identities }
        | Request::GetIdentityVerificationAttributes { identities } => identities.to_vec(),
        Request::GetEmailIdentity { identity } => vec![(*identity).to_owned()],
        _ => Vec::new(),
    }
}

/// The answer when nothing is scripted: an empty list, identities left out, a
/// small sandbox-like quota, sending enabled.
pub fn default_answer(request: &Request<'_>) -> Response {
    match request {
        Request::ListIdentities { .. } => Response::ListIdentities(IdentityPage::default()),
        Request::GetIdentityMailFromDomainAttributes { .. } => {
            Response::GetIdentityMailFromDomainAttributes(HashMap::new())
        }
        Request::GetIdentityDkimAttributes { .. } => {
            Response::GetIdentityDkimAttributes(HashMap::new())
        }
        Request::GetIdentityVerificationAttributes { .. } => {
            Response::GetIdentityVerificationAttributes(HashMap::new())
        }
        Request::GetSendQuota {} => Response::GetSendQuota(SendQuota {
            max_24_hour_send: Some(200.0),
            max_send_rate: Some(1.0),
            sent_last_24_hours: Some(10.0),
        }),
        Request::GetAccountSendingEnabled {} => Response::GetAccountSendingEnabled(Some(true)),
        Request::GetAccount {} => Response::GetAccount(crate::model::AccountDetails {
            enforcement_status: Some("HEALTHY".into()),
            production_access_enabled: Some(true),
            sending_enabled: Some(true),
            send_quota: Some(SendQuota {
                max_24_hour_send: Some(200.0),
                max_send_rate: Some(1.0),
                sent_last_24_hours: Some(10.0),
            }),
            review_status: None,
            vdm_enabled: Some(false),
        }),
        Request::ListReputationEntities { .. } => {
            Response::ListReputationEntities(crate::model::EntityPage::default())
        }
        Request::GetEmailIdentity { .. } => {
            Response::GetEmailIdentity(crate::model::EmailIdentity::default())
        }
        Request::ListEmailIdentities { .. } => {
            Response::ListEmailIdentities(crate::model::EmailIdentityPage::default())
        }
    }
}

/// For a hook: a `GetIdentityMailFromDomainAttributes` answer holding every identity
/// asked about, each with `attributes(identity)`; `None` for any other request.
pub fn mail_from_for_all(
    request: &Request<'_>,
    attributes: impl Fn(&str) -> crate::model::MailFromAttributes,
) -> Option<BoxFuture<'static, Result<Response, SesError>>> {
    let Request::GetIdentityMailFromDomainAttributes { identities } = request else {
        return None;
    };
    let answer = identities
        .iter()
        .map(|id| (id.clone(), attributes(id)))
        .collect();
    Some(Box::pin(std::future::ready(Ok(
        Response::GetIdentityMailFromDomainAttributes(answer),
    ))))
}
