//! The `reputation_entities` collector (off by default: it needs
//! ses:ListReputationEntities): SESv2 `ListReputationEntities`, every page once a cycle
//! per target: each resource SES tracks reputation for (an identity, a tenant, a
//! configuration set...) with its aggregate sending status, so a resource SES (or the
//! customer) paused shows while the account is `HEALTHY`.
//!
//! Which resource types SES lists cannot be checked here (no emulator has the API):
//! the reference says entities are of type `RESOURCE` today, referenced by ARN. The
//! ARN's resource part gives `resource_type` and `resource_name` (`identity/NAME`,
//! `tenant/NAME/ID`, `configuration-set/NAME`); an identity's name is also its
//! `identity` label, so its series join the identity collectors'; identity entities
//! follow the target's identity selection like every identity series. A type or an
//! ARN this build cannot read is exported as SES spelt it, with empty resource labels.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use tracing::{info, warn};

use super::quota::time;
use super::{publish_account, read_pages, Ctx, Outlet, Progress, Registration, Scope};
use crate::aws::Operation;
use crate::model::{ReputationEntity, SendingStatus, StatusRecord};
use crate::publish::Publishing;
use crate::render::{ses_gauge, seconds, unix_millis, Derived, Family, Renderer, Samples};

pub const REGISTRATION: Registration = Registration {
    name: "reputation_entities",
    enabled_by_default: false,
    help: "The reputation_entities collector: SESv2 ListReputationEntities per target, each resource's sending status as SES's reputation management sets it (off by default: it needs ses:ListReputationEntities).",
    scope: Scope::Target(|outlet| Box::new(EntitiesCollector::new(outlet))),
};

const OPERATIONS: &[Operation] = &[Operation::ListReputationEntities];

/// 200 pages of 100: twice the entities of an account with SES's 10,000 identities
/// per region; a server that keeps handing out new tokens is not followed for long
/// (the target's other collectors wait for this one's cycle), and one that repeats a
/// token is stopped at once.
const MAX_PAGES: usize = 200;

/// One entity with the labels read from its reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entity {
    pub entity: ReputationEntity,
    pub resource_type: String,
    pub resource_name: String,
}

impl Entity {
    pub fn new(entity: ReputationEntity) -> Entity {
        let (resource_type, resource_name) = resource(&entity.reference);
        Entity {
            resource_type: resource_type.to_owned(),
            resource_name: resource_name.to_owned(),
            entity,
        }
    }

    /// The identity this entity is, when it is one: the `identity` label.
    fn identity(&self) -> Option<&str> {
        (self.resource_type == "identity" && !self.resource_name.is_empty())
            .then_some(self.resource_name.as_str())
    }

    fn aggregate(&self) -> Option<SendingStatus> {
        self.entity.aggregate.as_deref().map(SendingStatus::parse)
    }

    /// Writes one sample with the entity's labels, then `extra`.
    fn sample(&self, samples: &mut Samples<'_>, extra: &[(&'static str, &str)], value: f64) {
        let mut pairs: Vec<(&'static str, &str)> = Vec::with_capacity(5 + extra.len());
        pairs.push(("entity_reference", &self.entity.reference));
        pairs.push((
            "entity_type",
            self.entity.entity_type.as_deref().unwrap_or(""),
        ));
        pairs.push(("resource_type", &self.resource_type));
        pairs.push(("resource_name", &self.resource_name));
        if let Some(identity) = self.identity() {
            pairs.push(("identity", identity));
        }
        pairs.extend_from_slice(extra);
        samples.sample(&pairs, value);
    }
}

/// `arn:PARTITION:ses:REGION:ACCOUNT:TYPE/NAME[/...]` → (TYPE, NAME); an identity's
/// NAME is the whole rest (an address may hold a `/`); ("", "") for a reference that
/// is not an SES ARN.
fn resource(reference: &str) -> (&str, &str) {
    let mut parts = reference.splitn(6, ':');
    let (Some("arn"), Some(_), Some("ses"), Some(_), Some(_), Some(rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return ("", "");
    };
    match rest.split_once('/') {
        Some(("identity", name)) => ("identity", name),
        Some((kind, path)) => (kind, path.split('/').next().unwrap_or("")),
        None => ("", ""),
    }
}

/// The last complete listing and when it finished: a failed or cut-short listing
/// keeps it (an entity missing from half a listing is not gone).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntitiesRecord {
    pub answer: Option<(Arc<Vec<Entity>>, SystemTime)>,
}

pub struct EntitiesCollector {
    record: EntitiesRecord,
    /// Entity types this build does not know, logged once each.
    unknown_logged: HashSet<String>,
    publishing: Publishing<Option<Renderer<EntitiesRecord>>>,
}

impl EntitiesCollector {
    pub fn new(outlet: Outlet) -> EntitiesCollector {
        EntitiesCollector {
            record: EntitiesRecord::default(),
            unknown_logged: HashSet::new(),
            publishing: outlet.publishing(),
        }
    }

    async fn run_cycle(&mut self, ctx: &Ctx<'_>) -> Progress {
        // Back to back at the ceiling while it lists; once a cycle.
        ctx.telemetry
            .set_planned_rate(Operation::ListReputationEntities, ctx.plan.rate);
        let mut progress = Progress::new();
        // Watched domains in lower case: SES may spell a domain in another case.
        let domains: HashSet<String> = ctx
            .watched
            .iter()
            .filter(|w| !w.contains('@'))
            .map(|w| w.to_ascii_lowercase())
            .collect();
        let aws = ctx.aws;
        let read = read_pages(ctx, "ListReputationEntities", MAX_PAGES, |token| async move {
            let page = aws.reputation_entities(token).await?;
            Ok((page.entities, page.next_token))
        })
        .await;
        progress.answered = read.answered;
        let finished = read.finished;
        progress.complete = finished;
        if finished {
            let mut entities: Vec<Entity> = read
                .items
                .into_iter()
                .map(Entity::new)
                .filter(|e| watched(ctx, &domains, e))
                .collect();
            entities.sort_by(|a, b| a.entity.reference.cmp(&b.entity.reference));
            entities.dedup_by(|a, b| a.entity.reference == b.entity.reference);
            self.log_changes(ctx, &entities);
            self.record.answer = Some((Arc::new(entities), SystemTime::now()));
        }
        publish_account(&mut self.publishing, ctx, FAMILIES, self.record.clone()).await;
        progress
    }

    /// An entity paused or resumed is news; a type this build does not know is
    /// logged once.
    fn log_changes(&mut self, ctx: &Ctx<'_>, now: &[Entity]) {
        let before: HashMap<&str, Option<SendingStatus>> = self
            .record
            .answer
            .iter()
            .flat_map(|(list, _)| list.iter())
            .map(|e| (e.entity.reference.as_str(), e.aggregate()))
            .collect();
        let first = self.record.answer.is_none();
        let (account, region) = (ctx.account, ctx.region);
        for e in now {
            let status = e.aggregate();
            let was = before.get(e.entity.reference.as_str()).copied().flatten();
            if status == Some(SendingStatus::Disabled) && was != status {
                warn!(aws_account_id = %account, aws_region = %region, entity = %e.entity.reference, resource_type = %e.resource_type, resource_name = %e.resource_name, "SES refuses mail through this resource: its sending status is DISABLED");
            } else if !first && was == Some(SendingStatus::Disabled) && status != was {
                info!(aws_account_id = %account, aws_region = %region, entity = %e.entity.reference, status = status.map_or("not reported", SendingStatus::as_str), "the resource's sending status is no longer DISABLED");
            }
            if let Some(kind) = e.entity.entity_type.as_deref() {
                if kind != "RESOURCE" && self.unknown_logged.insert(kind.to_owned()) {
                    warn!(aws_account_id = %account, aws_region = %region, entity_type = kind, "ListReputationEntities answered an entity type this build does not know; exported with its type as SES spelt it");
                }
            }
        }
    }
}

super::cycle_collector!(EntitiesCollector);

/// Identity entities follow the target's identity selection (its list, discovery
/// filters): an identity the exporter does not watch is not paged for here either.
/// Every other resource (tenants, configuration sets) is the account's, and kept.
fn watched(ctx: &Ctx<'_>, domains: &HashSet<String>, e: &Entity) -> bool {
    match e.identity() {
        Some(id) => {
            ctx.watched.binary_search_by(|w| w.as_str().cmp(id)).is_ok()
                || (!id.contains('@') && domains.contains(&id.to_ascii_lowercase()))
        }
        None => true,
    }
}

fn entities(r: &EntitiesRecord) -> Option<Arc<Vec<Entity>>> {
    r.answer.as_ref().map(|(list, _)| Arc::clone(list))
}

fn answered(r: &EntitiesRecord) -> Option<u64> {
    r.answer.as_ref().map(|(_, at)| unix_millis(*at))
}

/// Entities by aggregate status; every status has its line, 0 included.
fn counts(samples: &mut Samples<'_>, list: &Arc<Vec<Entity>>) {
    for state in SendingStatus::ALL {
        let n = list
            .iter()
            .filter(|e| e.aggregate().is_some_and(|s| s == state))
            .count();
        samples.sample(&[("status", state.as_str())], n as f64);
    }
}

fn sending_status(samples: &mut Samples<'_>, list: &Arc<Vec<Entity>>) {
    for e in list.iter() {
        let Some(current) = e.aggregate() else { continue };
        for state in SendingStatus::ALL {
            e.sample(
                samples,
                &[("status", state.as_str())],
                f64::from(u8::from(current == state)),
            );
        }
    }
}

/// The two status records of an entity with their `source` label.
fn sources(e: &Entity) -> impl Iterator<Item = (&'static str, &StatusRecord)> {
    [("aws_ses", &e.entity.aws_ses), ("customer", &e.entity.customer)]
        .into_iter()
        .filter_map(|(source, record)| record.as_ref().map(|r| (source, r)))
}

fn status_info(samples: &mut Samples<'_>, list: &Arc<Vec<Entity>>) {
    for e in list.iter() {
        for (source, record) in sources(e) {
            e.sample(
                samples,
                &[
                    ("source", source),
                    ("status", record.status.as_deref().unwrap_or("")),
                    ("cause", record.cause.as_deref().unwrap_or("")),
                ],
                1.0,
            );
        }
    }
}

fn status_updated(samples: &mut Samples<'_>, list: &Arc<Vec<Entity>>) {
    for e in list.iter() {
        for (source, record) in sources(e) {
            if let Some(millis) = record.last_updated {
                e.sample(samples, &[("source", source)], seconds(millis));
            }
        }
    }
}

fn info(samples: &mut Samples<'_>, list: &Arc<Vec<Entity>>) {
    for e in list.iter() {
        e.sample(
            samples,
            &[
                ("impact", e.entity.impact.as_deref().unwrap_or("")),
                ("policy", e.entity.policy.as_deref().unwrap_or("")),
            ],
            1.0,
        );
    }
}

#[rustfmt::skip]
const FAMILIES: &[Family<EntitiesRecord>] = &[
    ses_gauge("aws_ses_reputation_entities", &Derived { value: entities, write: counts },
        "Reputation entities of the account in this region by aggregate sending status (ListReputationEntities SendingStatusAggregate); entities without one are not counted."),
    ses_gauge("aws_ses_reputation_entity_sending_status", &Derived { value: entities, write: sending_status },
        "Aggregate sending status of a reputation entity (SendingStatusAggregate) as a state set: ENABLED; DISABLED, SES refuses mail through the resource (SES or the customer paused it); REINSTATED; Unknown for a value this build does not know; absent when SES left it out."),
    ses_gauge("aws_ses_reputation_entity_status_info", &Derived { value: entities, write: status_info },
        "The SES-managed (source=\"aws_ses\") and customer-managed (source=\"customer\") status of a reputation entity, with its cause, as SES spelt them; always 1."),
    ses_gauge("aws_ses_reputation_entity_status_last_updated_timestamp_seconds", &Derived { value: entities, write: status_updated },
        "Unix time at which the entity's SES-managed or customer-managed status last changed (LastUpdatedTimestamp); absent when SES left it out."),
    ses_gauge("aws_ses_reputation_entity_info", &Derived { value: entities, write: info },
        "A reputation entity's reputation impact (LOW, HIGH) and management policy, as SES spelt them (empty when left out); always 1."),
    ses_gauge("aws_ses_reputation_entities_last_refresh_timestamp_seconds", &Derived { value: answered, write: time },
        "Unix time at which SES last answered a complete ListReputationEntities listing; a failed or partial listing leaves it unchanged."),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{target_labels, Assembler};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn the_arn_gives_the_resource() {
        assert_eq!(
            resource("arn:aws:ses:eu-west-1:111111111111:identity/example.com"),
            ("identity", "example.com")
        );
        assert_eq!(
            resource("arn:aws:ses:eu-west-1:111111111111:tenant/acme/tn-123"),
            ("tenant", "acme")
        );
        assert_eq!(
            resource("arn:aws:ses:eu-west-1:111111111111:identity/a/b@example.com"),
            ("identity", "a/b@example.com")
        );
        assert_eq!(resource("arn:aws:sns:eu-west-1:1:topic/x"), ("", ""));
        assert_eq!(resource("not-an-arn"), ("", ""));
        assert_eq!(resource("arn:aws:ses:eu-west-1:1:odd"), ("", ""));
    }

    #[test]
    fn a_disabled_identity_joins_its_identity_series() {
        let disabled = ReputationEntity {
            reference: "arn:aws:ses:eu-west-1:111111111111:identity/shop.example.com".into(),
            entity_type: Some("RESOURCE".into()),
            aggregate: Some("DISABLED".into()),
            aws_ses: Some(StatusRecord {
                status: Some("DISABLED".into()),
                cause: Some("complaint \"rate\"".into()),
                last_updated: Some(1_000),
            }),
            ..ReputationEntity::default()
        };
        let tenant = ReputationEntity {
            reference: "arn:aws:ses:eu-west-1:111111111111:tenant/acme/tn-1".into(),
            entity_type: Some("SOMETHING_NEW".into()),
            ..ReputationEntity::default()
        };
        let record = EntitiesRecord {
            answer: Some((
                Arc::new(vec![Entity::new(disabled), Entity::new(tenant)]),
                UNIX_EPOCH + Duration::from_secs(5),
            )),
        };
        let mut r = Renderer::new(FAMILIES, target_labels("111111111111", "eu-west-1"));
        let part = Arc::new(r.build_account(&record));
        let text = Assembler::default().assemble(&[&[part]]).text();
        assert!(text.contains("aws_ses_reputation_entity_sending_status{aws_account_id=\"111111111111\",aws_region=\"eu-west-1\",entity_reference=\"arn:aws:ses:eu-west-1:111111111111:identity/shop.example.com\",entity_type=\"RESOURCE\",resource_type=\"identity\",resource_name=\"shop.example.com\",identity=\"shop.example.com\",status=\"DISABLED\"} 1\n"), "{text}");
        assert!(text.contains("cause=\"complaint \\\"rate\\\"\"} 1\n"), "{text}");
        assert!(text.contains("aws_ses_reputation_entities{aws_account_id=\"111111111111\",aws_region=\"eu-west-1\",status=\"DISABLED\"} 1\n"));
        // The tenant: no aggregate sent, so no state set; its info line keeps its name.
        assert!(!text.contains("resource_name=\"acme\",status="), "{text}");
        assert!(text.contains("entity_type=\"SOMETHING_NEW\",resource_type=\"tenant\",resource_name=\"acme\",impact=\"\",policy=\"\"} 1\n"), "{text}");
        assert!(text.contains("source=\"aws_ses\"} 1\n"), "{text}");
    }
}
