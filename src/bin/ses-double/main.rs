//! `ses-double`: a stand-in for Amazon SES's Query API on loopback, for the tests,
//! the demo and the benchmarks. It answers `GetIdentityMailFromDomainAttributes`,
//! `GetIdentityDkimAttributes`, `GetIdentityVerificationAttributes`, `GetSendQuota`,
//! `GetAccountSendingEnabled` and `ListIdentities` in SES's wire format, and STS's
//! `GetCallerIdentity` and `AssumeRole`, with what moto cannot do: every status,
//! paging, the 100-identity limit, its own rate limit per (account, region,
//! operation) (answering `Throttling`), sending disabled, and injected faults.
//! Accounts and regions are separate: the region comes from the request's SigV4
//! scope, the account from the access key (`AssumeRole` hands out keys that name
//! the role's account; any other key is `--account`). It records the arrival time of every
//! request so a test can check the exporter's rate contract where it matters, at the
//! server. With `--upstream` it is a recording proxy in front of another server
//! (moto), to count the requests that reach it.
//!
//! Control API (plain JSON over HTTP, under `/_double/`):
//! - `GET /_double/requests`: every SES request so far, `[{"t", "action",
//!   "identities", "status", "outcome"}]`, `t` in Unix seconds; `DELETE` clears it.
//! - `PUT /_double/faults`: a [`Faults`](faults::Faults) object, replacing the current one.
//! - `PUT /_double/identities/NAME` with `{"mail_from_domain", "status", "behavior",
//!   "dkim_enabled", "dkim_status", "verification_status", "omit"}` (each optional;
//!   `omit` lists wire fields to leave out of the answers) creates or replaces an
//!   identity; `DELETE` removes it.
//! - `PUT /_double/account` with `{"sending_enabled", "max_24_hour_send",
//!   "max_send_rate", "sent_last_24_hours", "omit"}` sets the account-level answers.
//! - `PUT /_double/roles/ARN` with `{"external_id"}`: `AssumeRole` of that role then
//!   requires that external ID (roles not listed are assumable by anyone).
//!
//! Identity and account paths take `?account=ID&region=NAME` (default: `--account`
//! and `--region`).
//!
//! This file holds the flags and the start-up: it seeds the home scope
//! (`--account`, `--region`), listens, and says so on stdout. The rest, by module:
//! [`server`] takes connections, reads and records requests; [`answer`] decides
//! each SES or STS answer (checks, rate limit, faults); [`ses`] and [`sts`] answer
//! the operations; [`faults`] holds the injected faults; [`control`] the
//! `/_double/` API; [`state`] what the double holds; [`seed`] the identities it
//! starts with; [`proxy`] the `--upstream` mode; [`wire`] the response body and
//! the XML envelopes.

mod answer;
mod control;
mod faults;
mod proxy;
mod seed;
mod server;
mod ses;
mod state;
mod sts;
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
    about = "SES Query API test double (loopback only)"
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
    /// Requests per second per operation before answering `Throttling`, like SES's
    /// default sending-API limit. 0 turns the limit off.
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
