//! `ses-double`: a stand-in for Amazon SES on loopback, for the tests, the demo and
//! the benchmarks. It answers SES's Query API (`GetIdentityMailFromDomainAttributes`,
//! `GetIdentityDkimAttributes`, `GetIdentityVerificationAttributes`, `GetSendQuota`,
//! `GetAccountSendingEnabled`, `ListIdentities`) in SES's XML, SESv2's REST-JSON
//! (`GetAccount`, `ListReputationEntities`, `GetEmailIdentity`,
//! `ListEmailIdentities`, under `/v2/email/`), and STS's `GetCallerIdentity` and
//! `AssumeRole`, with what moto cannot do: every status, paging, the 100-identity
//! limit, its own rate limit per (account, region, operation) (answering
//! `Throttling`, or SESv2's `TooManyRequestsException` with HTTP 429), sending
//! disabled, and injected faults, each in the request's protocol. Both SES APIs
//! answer from the same identities and account. Accounts and regions are separate:
//! the region comes from the request's SigV4 scope, the account from the access key
//! (`AssumeRole` hands out keys that name the role's account; any other key is
//! `--account`). It records the arrival time of every request so a test can check
//! the exporter's rate contract where it matters, at the server. With `--upstream`
//! it is a recording proxy in front of another server (moto), to count the requests
//! that reach it.
//!
//! Control API (plain JSON over HTTP, under `/_double/`):
//! - `GET /_double/requests`: every SES, SESv2 and STS request so far, `[{"t",
//!   "action", "identities", "status", "outcome", "account", "region"}]`, `t` in Unix
//!   seconds, `action` the operation's name (SESv2's too: `GetAccount`, ...); `DELETE`
//!   clears it.
//! - `PUT /_double/faults`: a [`Faults`](faults::Faults) object, replacing the current one.
//! - `PUT /_double/identities/NAME` with `{"mail_from_domain", "status", "behavior",
//!   "dkim_enabled", "dkim_status", "verification_status", "dkim_tokens",
//!   "signing_origin", "signing_hosted_zone", "verification_error_type",
//!   "verification_last_checked", "verification_last_success", "sending_enabled",
//!   "omit"}` (each optional; statuses in SES's spelling, which SESv2 answers turn
//!   into theirs; timestamps in Unix seconds; `omit` lists wire fields to leave out
//!   of the answers, see [`Identity`](state::Identity)) creates or replaces an
//!   identity; `DELETE` removes it. `GET /_double/identities` lists them.
//! - `PUT /_double/account` with `{"sending_enabled", "max_24_hour_send",
//!   "max_send_rate", "sent_last_24_hours", "enforcement_status",
//!   "production_access_enabled", "review_status", "review_case_id", "vdm_enabled",
//!   "omit"}` sets the account-level answers (a fresh account: sending enabled,
//!   `HEALTHY`, production access, no review, VDM `DISABLED`).
//! - `PUT /_double/reputation-entities` with `[{"reference", "type", "aggregate",
//!   "ses_status", "ses_cause", "ses_updated", "customer_status", "customer_cause",
//!   "customer_updated", "impact", "policy", "omit"}]` (all but `reference` optional)
//!   replaces SESv2's reputation entities (none at start, see
//!   [`ReputationEntity`](state::ReputationEntity)); `GET` lists them.
//! - `PUT /_double/roles/ARN` with `{"external_id"}`: `AssumeRole` of that role then
//!   requires that external ID (roles not listed are assumable by anyone).
//!
//! Identity, account and reputation-entity paths take `?account=ID&region=NAME`
//! (default: `--account` and `--region`).
//!
//! This file holds the flags and the start-up: it seeds the home scope
//! (`--account`, `--region`), listens, and says so on stdout. The rest, by module:
//! [`server`] takes connections, reads and records requests; [`answer`] decides
//! each answer (checks, rate limit, faults); [`ses`], [`v2`] and [`sts`] answer the
//! operations; [`faults`] holds the injected faults; [`control`] the `/_double/`
//! API; [`state`] what the double holds; [`seed`] the identities it starts with;
//! [`proxy`] the `--upstream` mode; [`wire`] the response bodies, the XML envelopes
//! and both protocols' errors.

mod answer;
mod control;
mod faults;
mod proxy;
mod seed;
mod server;
mod ses;
mod state;
mod sts;
mod v2;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use clap::Parser;
use tokio::net::TcpListener;

use seed::Seed;
use state::{Double, State};

#[derive(Debug, Parser)]
#[command(
    name = "ses-double",
    about = "SES (Query API and SESv2 REST-JSON) test double (loopback only)"
)]
struct Args {
    /// Address to listen on. Port 0 picks a free port; the first line on stdout
    /// is `listening on http://ADDR` once the port accepts connections.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Identities to start with: `demo` (every status x behavior, with and without a
    /// custom MAIL FROM) or `none`.
    #[arg(long, default_value = "demo")]
    seed: Seed,
    /// Also create this many generated domains (`id-00000.bench.example` ...), with a
    /// custom MAIL FROM in Success, for load tests.
    #[arg(long, default_value_t = 0)]
    seed_count: usize,
    /// Requests per second per operation before answering `Throttling` (SESv2:
    /// `TooManyRequestsException`), like SES's default sending-API limit. 0 turns
    /// the limit off.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Forward SES requests to this server (e.g. moto) and only record them.
    #[arg(long)]
    upstream: Option<SocketAddr>,
    /// The account of requests signed with keys `AssumeRole` did not hand out.
    #[arg(long, default_value = "123456789012")]
    account: String,
    /// The region the seeded identities and unscoped control requests belong to.
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let mut state = State::default();
    let home = state
        .scopes
        .entry((args.account.clone(), args.region.clone()))
        .or_default();
    if let Seed::Demo = args.seed {
        seed::demo(&mut home.identities);
    }
    seed::bench(&mut home.identities, args.seed_count);
    let double = Arc::new(Double {
        state: Mutex::new(state),
        rate: args.rate,
        upstream: args.upstream,
        account: args.account,
        region: args.region,
    });
    let listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(err) => {
            eprintln!("ses-double: cannot listen on {}: {err}", args.listen);
            std::process::exit(2);
        }
    };
    let addr = listener.local_addr().unwrap_or(args.listen);
    // The readiness signal tests wait for: the socket is already accepting.
    // One line at start-up, before any connection exists: nothing to block.
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{addr}");
        let _ = out.flush();
    }

    server::serve(listener, double).await;
}
