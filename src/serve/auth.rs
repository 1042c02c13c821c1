//! Basic authentication for the web config's `basic_auth_users` ([`Users`]): bcrypt hashes
//! as htpasswd writes them (`$2y$`, also `$2a$`/`$2b$`), checked on the blocking pool behind
//! a bounded, per-address admission, remembered so a scraper pays bcrypt once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use http::HeaderValue;
use tokio::sync::{watch, Semaphore};

/// Most credentials remembered, each way; past it that memory starts over (a
/// scraper uses one, so this is only reached by churn, and then costs one bcrypt
/// each).
const MEMORY_CAPACITY: usize = 1024;
/// Refused credentials remembered: a flood repeating a wrong password is answered
/// without bcrypt (exporter-toolkit caches refusals too).
const REFUSED_CAPACITY: usize = 4096;
/// bcrypt checks running at once. A flood of wrong passwords (each one a bcrypt)
/// takes at most this many blocking threads, and a scraper whose credentials are
/// cached never waits for them.
const BCRYPT_SLOTS: usize = 2;
/// Checks one client address may have waiting or running at once; beyond it, 429.
/// A flood from one address then queues at most this many checks in front of a
/// scraper at another address.
const PER_ADDRESS: usize = 4;
/// Checks waiting for a slot, from all addresses; beyond it, 503.
const MAX_WAITING: usize = 64;
/// Longest a check waits for a slot before it is answered 503: a scrape must not
/// spend its whole timeout (10 s by default) in this queue.
const MAX_WAIT: Duration = Duration::from_secs(3);

/// What [`Users::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials of a configured user.
    Allowed,
    /// No credentials, or wrong ones: 401.
    Denied,
    /// This client address already has [`PER_ADDRESS`] checks waiting or running: 429.
    AddressBusy,
    /// No bcrypt slot within [`MAX_WAIT`], or [`MAX_WAITING`] checks already wait: 503.
    Busy,
}

pub struct Users {
    hashes: BTreeMap<String, String>,
    /// Checked when the user is unknown, one per cost the users' hashes have; the
    /// user name picks one (keyed, weighted by how many users have that cost), so an
    /// unknown name takes as long as some real user's wrong password would and its
    /// timing does not tell it apart from a user of another cost.
    decoys: Vec<(u32, String, usize)>,
    memory: Arc<Memory>,
    gate: Arc<Gate>,
}

/// Fingerprints of (user, hash, password) that bcrypt accepted or refused. The
/// password itself is never kept. Shared by the configurations a reload replaces,
/// so a reload does not make every scraper pay bcrypt again.
struct Memory {
    /// Accepted. A reload keeps them: the fingerprint holds the hash, so those of a
    /// user whose hash changed can never match again (and are gone when the set
    /// starts over at its capacity), and a removed user is never looked up.
    verified: Mutex<HashSet<u128>>,
    /// Refused. Kept apart: a flood of wrong guesses can churn this set, never
    /// evict the real scrapers from `verified`.
    refused: Mutex<HashSet<u128>>,
    /// Random per process, so the fingerprints are useless anywhere else.
    keys: (RandomState, RandomState),
}

/// The admission in front of bcrypt, shared across reloads (a reload must not
/// double the number of bcrypts running).
struct Gate {
    slots: Arc<Semaphore>,
    /// Checks waiting or running, by client address.
    by_address: Mutex<HashMap<IpAddr, usize>>,
    waiting: Mutex<usize>,
    /// Checks in progress, by fingerprint: a request with the same credentials
    /// waits for that check instead of starting its own (a scraper opening ten
    /// connections at once pays one bcrypt and gets no 429; a flood repeating one
    /// guess runs one).
    pending: Mutex<HashMap<u128, watch::Receiver<()>>>,
}

/// The leader of a check in progress; its drop (when the check ends, or when it
/// gave up) wakes the requests waiting on the same credentials.
struct Pending {
    gate: Arc<Gate>,
    key: u128,
    _done: watch::Sender<()>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        lock(&self.gate.pending).remove(&self.key);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A client address's place in the gate, from admission until its bcrypt ends
/// (it moves into the blocking closure, so a cancelled request keeps it).
struct Seat {
    gate: Arc<Gate>,
    address: IpAddr,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut by_address = lock(&self.gate.by_address);
        if let Some(n) = by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                by_address.remove(&self.address);
            }
        }
    }
}

/// One of [`MAX_WAITING`] places in the queue, while waiting for a slot.
struct Waiting<'a>(&'a Gate);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        *lock(&self.0.waiting) -= 1;
    }
}

impl Gate {
    fn new() -> Gate {
        Gate {
            slots: Arc::new(Semaphore::new(BCRYPT_SLOTS)),
            by_address: Mutex::new(HashMap::new()),
            waiting: Mutex::new(0),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Leads the check of `key`, or joins the one in progress.
    fn lead_or_join(self: &Arc<Self>, key: u128) -> Result<Pending, watch::Receiver<()>> {
        let mut pending = lock(&self.pending);
        if let Some(running) = pending.get(&key) {
            return Err(running.clone());
        }
        let (done, running) = watch::channel(());
        pending.insert(key, running);
        Ok(Pending {
            gate: Arc::clone(self),
            key,
            _done: done,
        })
    }

    fn seat(self: &Arc<Self>, address: IpAddr) -> Option<Seat> {
        let address = share_of(address);
        let mut by_address = lock(&self.by_address);
        let n = by_address.entry(address).or_insert(0);
        if *n >= PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(Seat {
            gate: Arc::clone(self),
            address,
        })
    }

    fn wait(&self) -> Option<Waiting<'_>> {
        let mut waiting = lock(&self.waiting);
        if *waiting >= MAX_WAITING {
            return None;
        }
        *waiting += 1;
        Some(Waiting(self))
    }
}

/// The address a share of the gate is counted by: an IPv6 client is counted by its
/// /64, which one host can fill with addresses; an IPv4-mapped one as IPv4.
fn share_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
    }
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: the hashes stay out of logs and panics.
        f.debug_struct("Users")
            .field("names", &self.hashes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Users {
    /// Validates every hash; the error names the user whose hash is unusable. Costs
    /// one bcrypt per distinct cost (the decoys), so call it off the async threads.
    pub fn new(hashes: BTreeMap<String, String>) -> Result<Users, (String, String)> {
        Users::replacing(hashes, None)
    }

    /// As [`Users::new`], taking over what `previous` (the configuration a reload
    /// replaces) remembers of the users whose hash did not change, its decoys when
    /// the costs are the same, and its bcrypt admission.
    pub fn replacing(
        hashes: BTreeMap<String, String>,
        previous: Option<&Users>,
    ) -> Result<Users, (String, String)> {
        let mut costs = BTreeMap::<u32, usize>::new();
        for (user, hash) in &hashes {
            let cost = check_hash(hash).map_err(|reason| (user.clone(), reason))?;
            *costs.entry(cost).or_default() += 1;
        }
        if costs.is_empty() {
            costs.insert(bcrypt::DEFAULT_COST, 1);
        }
        let mut decoys = Vec::with_capacity(costs.len());
        for (cost, users) in costs {
            let reused = previous
                .and_then(|p| p.decoys.iter().find(|(c, _, _)| *c == cost))
                .map(|(_, hash, _)| hash.clone());
            let hash = match reused {
                Some(hash) => hash,
                None => {
                    let secret: [u8; 16] = rand::random();
                    let salt: [u8; 16] = rand::random();
                    bcrypt::hash_with_salt(secret, cost, salt)
                        .map_err(|e| (String::new(), format!("cannot prepare a decoy hash: {e}")))?
                        .format_for_version(bcrypt::Version::TwoB)
                }
            };
            decoys.push((cost, hash, users));
        }
        let (memory, gate) = match previous {
            Some(previous) => (Arc::clone(&previous.memory), Arc::clone(&previous.gate)),
            None => (
                Arc::new(Memory {
                    verified: Mutex::new(HashSet::new()),
                    refused: Mutex::new(HashSet::new()),
                    keys: (RandomState::new(), RandomState::new()),
                }),
                Arc::new(Gate::new()),
            ),
        };
        Ok(Users {
            hashes,
            decoys,
            memory,
            gate,
        })
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The decoy an unknown user name is checked against.
    fn decoy_for(&self, user: &str) -> &str {
        let total: usize = self.decoys.iter().map(|(_, _, n)| n).sum();
        let mut pick =
            (self.memory.keys.0.hash_one(("decoy", user)) % total.max(1) as u64) as usize;
        for (_, hash, n) in &self.decoys {
            if pick < *n {
                return hash;
            }
            pick -= n;
        }
        &self.decoys[0].1
    }

    /// Whether an `Authorization` header holds the credentials of a configured
    /// user. `client` is the peer's address, for the per-address share of bcrypt.
    pub async fn check(&self, authorization: Option<&HeaderValue>, client: IpAddr) -> Verdict {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return Verdict::Denied;
        };
        let known = self.hashes.get(&user);
        let hash = known
            .map_or_else(|| self.decoy_for(&user), String::as_str)
            .to_owned();
        let key = self.memory.fingerprint(&user, &hash, &password);
        let is_known = known.is_some();
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        let pending = loop {
            if let Some(verdict) = self.memory.recall(key, is_known) {
                return verdict;
            }
            match self.gate.lead_or_join(key) {
                Ok(pending) => break pending,
                // Woken when that check ends (or gives up): look again.
                Err(mut running) => {
                    if tokio::time::timeout_at(deadline, running.changed())
                        .await
                        .is_err()
                    {
                        return Verdict::Busy;
                    }
                }
            }
        };
        let Some(seat) = self.gate.seat(client) else {
            return Verdict::AddressBusy;
        };
        let slot = {
            let Some(_waiting) = self.gate.wait() else {
                return Verdict::Busy;
            };
            match tokio::time::timeout_at(deadline, Arc::clone(&self.gate.slots).acquire_owned())
                .await
            {
                Ok(Ok(slot)) => slot,
                _ => return Verdict::Busy,
            }
        };
        // The same credentials may have been decided while this one waited.
        if let Some(verdict) = self.memory.recall(key, is_known) {
            return verdict;
        }
        let memory = Arc::clone(&self.memory);
        // The slot, the seat and the lead go into the blocking closure: a request
        // cancelled while bcrypt runs keeps them until it ends, so disconnecting
        // cannot make more than BCRYPT_SLOTS checks run at once. The outcome is
        // remembered there too, before the waiting requests are woken.
        let checked = tokio::task::spawn_blocking(move || {
            let _held = (slot, seat);
            let matches = bcrypt::verify(&password, &hash).unwrap_or(false);
            // The decoy never matches a real user, whatever was sent.
            let ok = matches && is_known;
            memory.remember(key, ok);
            drop(pending);
            ok
        })
        .await
        .unwrap_or(false);
        if checked {
            Verdict::Allowed
        } else {
            Verdict::Denied
        }
    }
}

impl Memory {
    fn fingerprint(&self, user: &str, hash: &str, password: &[u8]) -> u128 {
        let one = |keys: &RandomState| keys.hash_one((user, hash, password));
        (u128::from(one(&self.keys.0)) << 64) | u128::from(one(&self.keys.1))
    }

    /// The verdict remembered for a fingerprint, if any.
    fn recall(&self, key: u128, known: bool) -> Option<Verdict> {
        if known && lock(&self.verified).contains(&key) {
            return Some(Verdict::Allowed);
        }
        lock(&self.refused)
            .contains(&key)
            .then_some(Verdict::Denied)
    }

    fn remember(&self, key: u128, ok: bool) {
        if ok {
            let mut verified = lock(&self.verified);
            if verified.len() >= MEMORY_CAPACITY {
                verified.clear();
            }
            verified.insert(key);
        } else {
            let mut refused = lock(&self.refused);
            if refused.len() >= REFUSED_CAPACITY {
                refused.clear();
            }
            refused.insert(key);
        }
    }
}

/// Checks a hash's form and returns its cost. `$2x$` (the pre-2011 variant with the
/// sign-extension bug) is refused rather than trusted.
fn check_hash(hash: &str) -> Result<u32, String> {
    if hash.is_empty() {
        return Err("no password hash".to_owned());
    }
    let variant = hash.get(..4).unwrap_or("");
    if !["$2a$", "$2b$", "$2y$"].contains(&variant) {
        return Err("not a bcrypt hash: it must start with $2y$, $2a$ or $2b$ \
             (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
            .to_owned());
    }
    let parts: bcrypt::HashParts = hash
        .parse()
        .map_err(|e| format!("not a valid bcrypt hash ({e})"))?;
    Ok(parts.get_cost())
}

/// `Basic <base64(user:password)>`, the scheme name in any case (RFC 7617).
fn parse_basic(value: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let value = value.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {token}")).unwrap()
    }

    fn users(password: &str, version: bcrypt::Version) -> Arc<Users> {
        let hash = bcrypt::hash_with_result(password, 4)
            .unwrap()
            .format_for_version(version);
        Arc::new(Users::new(BTreeMap::from([("alice".to_owned(), hash)])).unwrap())
    }

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    async fn ok(users: &Users, user: &str, password: &str) -> bool {
        users.check(Some(&header(user, password)), HERE).await == Verdict::Allowed
    }

    #[tokio::test]
    async fn every_htpasswd_variant_is_checked() {
        for version in [
            bcrypt::Version::TwoY,
            bcrypt::Version::TwoA,
            bcrypt::Version::TwoB,
        ] {
            let users = users("s3cret", version);
            assert!(ok(&users, "alice", "s3cret").await);
            assert!(!ok(&users, "alice", "wrong").await);
            assert!(!ok(&users, "mallory", "s3cret").await);
            assert_eq!(users.check(None, HERE).await, Verdict::Denied);
        }
    }

    #[tokio::test]
    async fn verdicts_are_remembered_apart() {
        let users = users("s3cret", bcrypt::Version::TwoY);
        assert!(ok(&users, "alice", "s3cret").await);
        assert_eq!(lock(&users.memory.verified).len(), 1);
        assert!(!ok(&users, "alice", "wrong").await);
        assert!(!ok(&users, "bob", "x").await);
        assert_eq!(
            lock(&users.memory.verified).len(),
            1,
            "refusals never go with the accepted"
        );
        assert_eq!(lock(&users.memory.refused).len(), 2);
        // A remembered verdict is only ever hit with the same password.
        let hash = users.hashes["alice"].clone();
        let key = users.memory.fingerprint("alice", &hash, b"s3cret");
        assert_eq!(users.memory.recall(key, true), Some(Verdict::Allowed));
        let other = users.memory.fingerprint("alice", &hash, b"s3cret ");
        assert_eq!(users.memory.recall(other, true), None);
    }

    #[tokio::test]
    async fn a_reload_keeps_what_it_knows_of_unchanged_users_only() {
        let alice = bcrypt::hash_with_result("a", 4)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        let bob = bcrypt::hash_with_result("b", 4)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        let first = Users::new(BTreeMap::from([
            ("alice".to_owned(), alice.clone()),
            ("bob".to_owned(), bob),
        ]))
        .unwrap();
        assert!(ok(&first, "alice", "a").await);
        assert!(ok(&first, "bob", "b").await);
        let bob2 = bcrypt::hash_with_result("b2", 4)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        let second = Users::replacing(
            BTreeMap::from([("alice".to_owned(), alice), ("bob".to_owned(), bob2)]),
            Some(&first),
        )
        .unwrap();
        let alice_key = second
            .memory
            .fingerprint("alice", &second.hashes["alice"], b"a");
        assert_eq!(
            second.memory.recall(alice_key, true),
            Some(Verdict::Allowed),
            "alice pays no bcrypt"
        );
        let bob_key = second
            .memory
            .fingerprint("bob", &second.hashes["bob"], b"b2");
        assert_eq!(
            second.memory.recall(bob_key, true),
            None,
            "bob's hash changed: he pays bcrypt again"
        );
        assert!(
            Arc::ptr_eq(&first.gate, &second.gate),
            "one admission across reloads"
        );
        assert_eq!(
            first.decoys[0].1, second.decoys[0].1,
            "same cost, same decoy"
        );
        assert!(ok(&second, "bob", "b2").await);
        assert!(!ok(&second, "bob", "b").await);
    }

    #[tokio::test]
    async fn one_address_cannot_take_every_place_in_the_queue() {
        let users = users("s3cret", bcrypt::Version::TwoY);
        let seats: Vec<Seat> = (0..PER_ADDRESS)
            .map(|_| users.gate.seat(HERE).unwrap())
            .collect();
        assert_eq!(
            users.check(Some(&header("alice", "guess")), HERE).await,
            Verdict::AddressBusy
        );
        let elsewhere = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
        assert!(ok(&users, "alice", "s3cret").await || users.gate.seat(elsewhere).is_some());
        drop(seats);
        assert!(
            lock(&users.gate.by_address).is_empty(),
            "seats are given back"
        );
        assert!(lock(&users.gate.pending).is_empty(), "leads are given back");
        assert!(ok(&users, "alice", "s3cret").await);
    }

    #[tokio::test]
    async fn a_full_queue_is_answered_busy_not_joined() {
        let users = users("s3cret", bcrypt::Version::TwoY);
        let held: Vec<_> = (0..BCRYPT_SLOTS)
            .map(|_| Arc::clone(&users.gate.slots).try_acquire_owned().unwrap())
            .collect();
        *lock(&users.gate.waiting) = MAX_WAITING;
        assert_eq!(
            users.check(Some(&header("alice", "s3cret")), HERE).await,
            Verdict::Busy
        );
        *lock(&users.gate.waiting) = 0;
        drop(held);
        assert!(ok(&users, "alice", "s3cret").await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_waits_for_a_slot_no_longer_than_the_bound() {
        let users = users("s3cret", bcrypt::Version::TwoY);
        let _held: Vec<_> = (0..BCRYPT_SLOTS)
            .map(|_| Arc::clone(&users.gate.slots).try_acquire_owned().unwrap())
            .collect();
        let start = tokio::time::Instant::now();
        assert_eq!(
            users.check(Some(&header("alice", "s3cret")), HERE).await,
            Verdict::Busy
        );
        assert_eq!(start.elapsed(), MAX_WAIT);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_checks_of_the_same_credentials_share_one_bcrypt() {
        let users = users("s3cret", bcrypt::Version::TwoY);
        let header = header("alice", "s3cret");
        let tasks: Vec<_> = (0..3 * PER_ADDRESS)
            .map(|_| {
                let (users, header) = (Arc::clone(&users), header.clone());
                tokio::spawn(async move { users.check(Some(&header), HERE).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(
                task.await.unwrap(),
                Verdict::Allowed,
                "no 429 for a scraper's own connections"
            );
        }
    }

    #[test]
    fn ipv6_clients_share_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::7".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(share_of(a), share_of(b));
        assert_ne!(share_of(a), share_of(c));
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        assert_eq!(share_of(mapped), "10.0.0.5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_decoys_cost_what_the_users_cost() {
        let hash = |cost| {
            bcrypt::hash_with_result("x", cost)
                .unwrap()
                .format_for_version(bcrypt::Version::TwoY)
        };
        let users = Users::new(BTreeMap::from([
            ("a".to_owned(), hash(4)),
            ("b".to_owned(), hash(5)),
            ("c".to_owned(), hash(5)),
        ]))
        .unwrap();
        let costs: Vec<(u32, usize)> = users.decoys.iter().map(|(c, _, n)| (*c, *n)).collect();
        assert_eq!(costs, [(4, 1), (5, 2)]);
        let cost_of = |user: &str| {
            users
                .decoy_for(user)
                .parse::<bcrypt::HashParts>()
                .unwrap()
                .get_cost()
        };
        // Every unknown name is checked at one of the users' costs, the same each
        // time, and names spread over all of them.
        let picked: Vec<u32> = (0..200).map(|i| cost_of(&format!("nobody{i}"))).collect();
        assert!(picked.iter().all(|c| [4, 5].contains(c)));
        assert!(picked.contains(&4) && picked.contains(&5), "{picked:?}");
        assert_eq!(cost_of("mallory"), cost_of("mallory"));
    }

    #[test]
    fn unusable_hashes_name_their_user() {
        for bad in [
            "",
            "plaintext",
            "$2x$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi",
            "$2y$10$short",
        ] {
            let err = Users::new(BTreeMap::from([("bob".to_owned(), bad.to_owned())])).unwrap_err();
            assert_eq!(err.0, "bob", "{bad:?}");
        }
    }

    #[test]
    fn basic_header_parsing() {
        assert_eq!(
            parse_basic(&header("a", "b:c")),
            Some(("a".to_owned(), b"b:c".to_vec()))
        );
        assert_eq!(
            parse_basic(&HeaderValue::from_static("bAsIc YTpi")),
            Some(("a".to_owned(), b"b".to_vec()))
        );
        assert_eq!(parse_basic(&HeaderValue::from_static("Bearer YTpi")), None);
        assert_eq!(parse_basic(&HeaderValue::from_static("Basic !!!")), None);
        assert_eq!(parse_basic(&HeaderValue::from_static("Basic YWI=")), None);
    }
}
