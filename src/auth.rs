//! Basic authentication for the web config's `basic_auth_users`: bcrypt hashes as
//! htpasswd writes them (`$2y$`, also `$2a$`/`$2b$`), checked on the blocking pool,
//! with a cache of verified credentials so a scraper pays bcrypt once, not per scrape.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http::HeaderValue;
use tokio::sync::Semaphore;

/// Most verified credentials remembered; past it the cache starts over (a scraper
/// uses one, so this is only reached by churn, and then costs one bcrypt each).
const CACHE_CAPACITY: usize = 1024;
/// bcrypt checks running at once. A flood of wrong passwords (each one a bcrypt)
/// takes at most this many blocking threads, and a scraper whose credentials are
/// cached never waits for them.
const BCRYPT_SLOTS: usize = 2;

pub struct Users {
    hashes: BTreeMap<String, String>,
    /// Checked when the user is unknown, at the cost most users' hashes have, so an
    /// unknown user takes as long as a wrong password and names cannot be probed.
    decoy: String,
    /// Fingerprints of (user, hash, password) that bcrypt accepted. Only successes:
    /// caching failures would let a flood of wrong guesses evict the real scrapers.
    /// The password itself is never kept.
    verified: Mutex<HashSet<u128>>,
    /// Random per process, so the fingerprints are useless anywhere else.
    keys: (RandomState, RandomState),
    slots: Semaphore,
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
    /// one bcrypt (the decoy), so call it off the async threads.
    pub fn new(hashes: BTreeMap<String, String>) -> Result<Users, (String, String)> {
        let mut costs = BTreeMap::<u32, usize>::new();
        for (user, hash) in &hashes {
            let cost = check_hash(hash).map_err(|reason| (user.clone(), reason))?;
            *costs.entry(cost).or_default() += 1;
        }
        // The most common cost; on a tie the higher one.
        let cost = costs
            .iter()
            .max_by_key(|(cost, count)| (**count, **cost))
            .map_or(bcrypt::DEFAULT_COST, |(cost, _)| *cost);
        let secret: [u8; 16] = rand::random();
        let salt: [u8; 16] = rand::random();
        let decoy = bcrypt::hash_with_salt(secret, cost, salt)
            .map_err(|e| (String::new(), format!("cannot prepare the decoy hash: {e}")))?
            .format_for_version(bcrypt::Version::TwoB);
        Ok(Users {
            hashes,
            decoy,
            verified: Mutex::new(HashSet::new()),
            keys: (RandomState::new(), RandomState::new()),
            slots: Semaphore::new(BCRYPT_SLOTS),
        })
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether an `Authorization` header holds the credentials of a configured user.
    pub async fn check(self: &Arc<Self>, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let known = self.hashes.get(&user);
        let hash = known.unwrap_or(&self.decoy).clone();
        let key = self.fingerprint(&user, &hash, &password);
        if known.is_some() && self.is_verified(key) {
            return true;
        }
        let Ok(_slot) = self.slots.acquire().await else {
            return false;
        };
        let matches =
            tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        // The decoy never matches a real user, whatever was sent.
        let ok = matches && known.is_some();
        if ok {
            self.remember(key);
        }
        ok
    }

    fn fingerprint(&self, user: &str, hash: &str, password: &[u8]) -> u128 {
        let one = |keys: &RandomState| keys.hash_one((user, hash, password));
        (u128::from(one(&self.keys.0)) << 64) | u128::from(one(&self.keys.1))
    }

    fn is_verified(&self, key: u128) -> bool {
        self.verified
            .lock()
            .map(|set| set.contains(&key))
            .unwrap_or(false)
    }

    fn remember(&self, key: u128) {
        if let Ok(mut set) = self.verified.lock() {
            if set.len() >= CACHE_CAPACITY {
                set.clear();
            }
            set.insert(key);
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

    #[tokio::test]
    async fn every_htpasswd_variant_is_checked() {
        for version in [
            bcrypt::Version::TwoY,
            bcrypt::Version::TwoA,
            bcrypt::Version::TwoB,
        ] {
            let users = users("s3cret", version);
            assert!(users.check(Some(&header("alice", "s3cret"))).await);
            assert!(!users.check(Some(&header("alice", "wrong"))).await);
            assert!(!users.check(Some(&header("mallory", "s3cret"))).await);
            assert!(!users.check(None).await);
        }
    }

    #[tokio::test]
    async fn verified_credentials_are_cached_and_failures_are_not() {
        let users = users("s3cret", bcrypt::Version::TwoY);
        assert!(users.check(Some(&header("alice", "s3cret"))).await);
        assert_eq!(users.verified.lock().unwrap().len(), 1);
        assert!(!users.check(Some(&header("alice", "wrong"))).await);
        assert!(!users.check(Some(&header("bob", "x"))).await);
        assert_eq!(users.verified.lock().unwrap().len(), 1);
        // A cached entry is only ever hit with the same password.
        let hash = users.hashes["alice"].clone();
        let key = users.fingerprint("alice", &hash, b"s3cret");
        assert!(users.is_verified(key));
        assert!(!users.is_verified(users.fingerprint("alice", &hash, b"s3cret ")));
    }

    #[test]
    fn the_decoy_costs_what_the_users_cost() {
        let users = users("s3cret", bcrypt::Version::TwoY);
        let decoy: bcrypt::HashParts = users.decoy.parse().unwrap();
        assert_eq!(decoy.get_cost(), 4);
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
