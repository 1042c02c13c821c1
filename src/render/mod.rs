//! The one renderer: records → exposition pieces, pre-rendered and pre-compressed. A
//! collector declares its families once, as a table of [`Family`] whose lines come from
//! one value of the record ([`Derived`]); [`Renderer`] makes pieces, [`body`] the body.
//!
//! A piece (one family's lines for a run of identities, [`piece`]) is keyed by a 128-bit
//! fingerprint of its inputs: the next part re-renders only the pieces whose inputs changed
//! and shares the rest with the body being served, so a new snapshot costs the changed
//! pieces (in a steady account, the refresh timestamps), not a second copy of the body.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::{Compress, Compression};

pub mod body;
pub mod piece;

pub use body::{Assembler, Exposition, Header, MetricType, Rendered, RenderedFamily};
pub use piece::Piece;

/// A group of identities ends after an identity whose name hashes to 0 modulo this,
/// so groups average this many identities and an identity added or removed changes
/// only the group it falls in, not every group after it.
const GROUP: u64 = 128;

/// One metric family of a collector: its header and how one record writes its lines.
pub struct Family<R: 'static> {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricType,
    /// Fetched from SES by the background poller (see [`body::CACHED`]).
    pub cached: bool,
    pub lines: &'static dyn Lines<R>,
}

impl<R> Family<R> {
    pub fn header(&self) -> Header {
        Header {
            name: self.name,
            help: self.help,
            kind: self.kind,
            cached: self.cached,
        }
    }
}

/// How a record appears in one family. Implemented by [`Derived`]; a trait so that a
/// table holds families whose values have different types.
pub trait Lines<R>: Sync {
    /// Feeds the fingerprint with everything [`Lines::write`] reads; `false` when the
    /// record has no lines in this family.
    fn input(&self, record: &R, fingerprint: &mut Fingerprint) -> bool;
    fn write(&self, record: &R, samples: &mut Samples<'_>);
}

/// A family whose lines are `write(value(record))`: the only [`Lines`] there is, so
/// the writer can only read what the fingerprint hashed. `value` is `None` for a
/// record without lines in the family.
pub struct Derived<R, V> {
    pub value: fn(&R) -> Option<V>,
    pub write: fn(&mut Samples<'_>, &V),
}

impl<R, V: Hash> Lines<R> for Derived<R, V> {
    fn input(&self, record: &R, fingerprint: &mut Fingerprint) -> bool {
        match (self.value)(record) {
            Some(v) => {
                v.hash(fingerprint);
                true
            }
            None => false,
        }
    }

    fn write(&self, record: &R, samples: &mut Samples<'_>) {
        if let Some(v) = (self.value)(record) {
            (self.write)(samples, &v);
        }
    }
}

/// A gauge family of `value` and `write` that the exporter computes itself (the
/// dns collector's): the table entry, the help last, as it is the longest.
pub const fn gauge<R, V: Hash + 'static>(
    name: &'static str,
    lines: &'static Derived<R, V>,
    help: &'static str,
) -> Family<R> {
    Family {
        name,
        help,
        kind: MetricType::Gauge,
        cached: false,
        lines,
    }
}

/// A gauge family of what SES answered: its HELP ends with [`body::CACHED`].
pub const fn ses_gauge<R, V: Hash + 'static>(
    name: &'static str,
    lines: &'static Derived<R, V>,
    help: &'static str,
) -> Family<R> {
    Family {
        cached: true,
        ..gauge(name, lines, help)
    }
}

/// An `f64` sample value as a fingerprint input (by its bits).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Value(pub f64);

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

/// Where a family's writer puts one record's samples. The writer gives a sample's
/// own label pairs and its value; this writes the name, the target's labels, the
/// identity label, the pairs, the closing brace and the value, and escapes every
/// label value. A writer never touches the text, so it cannot leave a label open,
/// forget the target's labels or put an identity label on an account family.
pub struct Samples<'a> {
    out: &'a mut String,
    name: &'static str,
    /// `aws_account_id="…",aws_region="…"`, escaped; empty in unlabelled tests.
    labels: &'a str,
    identity: Option<&'a str>,
}

impl<'a> Samples<'a> {
    pub fn new(
        out: &'a mut String,
        name: &'static str,
        labels: &'a str,
        identity: Option<&'a str>,
    ) -> Samples<'a> {
        Samples {
            out,
            name,
            labels,
            identity,
        }
    }

    /// The identity whose samples these are (`None` for account-level families).
    pub fn identity(&self) -> Option<&'a str> {
        self.identity
    }

    /// Writes `name{TARGET,identity="ID",k="v",...} value`.
    pub fn sample(&mut self, pairs: &[(&'static str, &str)], value: f64) {
        let out = &mut *self.out;
        out.push_str(self.name);
        out.push('{');
        out.push_str(self.labels);
        let mut first = self.labels.is_empty();
        let identity = self.identity.map(|id| ("identity", id));
        for (name, value) in identity.iter().chain(pairs) {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(name);
            out.push_str("=\"");
            escape(out, value);
            out.push('"');
        }
        out.push_str("} ");
        write_value(out, value);
        out.push('\n');
    }
}

/// A sample value as the text format writes it (Rust's shortest round-trip form,
/// which is Go's `strconv` form for the values exported here); 0 and 1, most of
/// the samples, without the formatter.
fn write_value(out: &mut String, value: f64) {
    use std::fmt::Write as _;
    if value.to_bits() == 0f64.to_bits() {
        out.push('0');
    } else if value == 1.0 {
        out.push('1');
    } else {
        let _ = write!(out, "{value}");
    }
}

/// The target's label pairs as written in every one of its samples.
pub fn target_labels(account_id: &str, region: &str) -> String {
    let mut out = String::from("aws_account_id=\"");
    escape(&mut out, account_id);
    out.push_str("\",aws_region=\"");
    escape(&mut out, region);
    out.push('"');
    out
}

/// Writes a label value with the escapes the text format requires.
pub fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Milliseconds since the epoch; 0 for a clock before 1970.
pub fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A time in milliseconds as the seconds a sample shows.
pub fn seconds(millis: u64) -> f64 {
    millis as f64 / 1000.0
}

/// Renders one collector's records of one target into pieces, keeping the previous
/// build's pieces to reuse.
pub struct Renderer<R: 'static> {
    families: &'static [Family<R>],
    labels: String,
    pieces: HashMap<u128, Piece>,
    /// Raw deflate at the default level (6): pieces are compressed once, not per
    /// scrape, so the smaller body is worth the CPU.
    compressor: Compress,
    /// Where a piece is rendered before being copied out at its exact size.
    scratch: String,
    /// Pieces rendered (not reused) by the last build, for tests and debug logs.
    pub rendered_last: usize,
}

impl<R> Renderer<R> {
    /// A renderer of `families` whose samples carry `labels` (see [`target_labels`]).
    pub fn new(families: &'static [Family<R>], labels: String) -> Renderer<R> {
        Renderer {
            families,
            labels,
            pieces: HashMap::new(),
            compressor: Compress::new(Compression::default(), false),
            scratch: String::new(),
            rendered_last: 0,
        }
    }

    /// Renders per-identity records, in the order given (the collectors keep them
    /// sorted by name).
    pub fn build<'r, I>(&mut self, records: I) -> Rendered
    where
        I: IntoIterator<Item = (&'r str, &'r R)>,
        R: 'r,
    {
        let records: Vec<(Option<&str>, &R)> =
            records.into_iter().map(|(id, r)| (Some(id), r)).collect();
        self.build_from(&records)
    }

    /// Renders one account-level record (no `identity` label).
    pub fn build_account(&mut self, record: &R) -> Rendered {
        self.build_from(&[(None, record)])
    }

    fn build_from(&mut self, records: &[(Option<&str>, &R)]) -> Rendered {
        let mut next: HashMap<u128, Piece> = HashMap::with_capacity(self.pieces.len());
        let mut out = Rendered {
            families: Vec::with_capacity(self.families.len()),
        };
        let mut rendered = 0;
        let ends: Vec<bool> = records
            .iter()
            .map(|(id, _)| id.is_some_and(ends_group))
            .collect();

        for (index, family) in self.families.iter().enumerate() {
            let mut pieces = Vec::new();
            let mut group: Vec<(Option<&str>, &R)> = Vec::new();
            let mut key = Fingerprint::new(index);
            for (&(id, record), &end) in records.iter().zip(&ends) {
                if !family.lines.input(record, &mut key) {
                    continue;
                }
                id.hash(&mut key);
                group.push((id, record));
                if end {
                    rendered += self.place(&mut next, &mut pieces, family, &key, &group);
                    group.clear();
                    key = Fingerprint::new(index);
                }
            }
            if !group.is_empty() {
                rendered += self.place(&mut next, &mut pieces, family, &key, &group);
            }
            out.families.push(RenderedFamily {
                header: family.header(),
                pieces,
            });
        }
        self.pieces = next;
        self.rendered_last = rendered;
        // A long identity list can leave a large scratch buffer; keep a modest one.
        self.scratch.shrink_to(64 * 1024);
        out
    }

    /// Appends the piece for `key` to `pieces`: the previous build's if it has one,
    /// else a fresh render. Returns 1 when it rendered.
    fn place(
        &mut self,
        next: &mut HashMap<u128, Piece>,
        pieces: &mut Vec<Piece>,
        family: &Family<R>,
        key: &Fingerprint,
        group: &[(Option<&str>, &R)],
    ) -> usize {
        let key = key.finish128();
        if let Some(piece) = next.get(&key) {
            pieces.push(piece.clone());
            return 0;
        }
        let (piece, fresh) = match self.pieces.remove(&key) {
            Some(piece) => (piece, 0),
            None => {
                self.scratch.clear();
                for (id, record) in group {
                    let mut samples =
                        Samples::new(&mut self.scratch, family.name, &self.labels, *id);
                    family.lines.write(record, &mut samples);
                }
                (Piece::with(&mut self.compressor, &self.scratch), 1)
            }
        };
        pieces.push(piece.clone());
        next.insert(key, piece);
        fresh
    }
}

fn ends_group(id: &str) -> bool {
    let mut h = DefaultHasher::new();
    (0x33u8, id).hash(&mut h);
    h.finish().is_multiple_of(GROUP)
}

/// Two independent 64-bit SipHash states over the same inputs: a 128-bit fingerprint,
/// so a stale piece is reused only if two hashes collide at once.
#[derive(Clone)]
pub struct Fingerprint(DefaultHasher, DefaultHasher);

impl Fingerprint {
    fn new(family: usize) -> Fingerprint {
        let mut a = DefaultHasher::new();
        let mut b = DefaultHasher::new();
        (0xa5u8, family).hash(&mut a);
        (0x5au8, family).hash(&mut b);
        Fingerprint(a, b)
    }

    fn finish128(&self) -> u128 {
        (u128::from(self.0.finish()) << 64) | u128::from(self.1.finish())
    }
}

impl Hasher for Fingerprint {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
        self.1.write(bytes);
    }

    fn finish(&self) -> u64 {
        self.0.finish() ^ self.1.finish()
    }
}

/// Writes a state set: one sample per state, `label="STATE"` 1 for `current`, else 0.
pub fn state_set<T: Copy + PartialEq>(
    samples: &mut Samples<'_>,
    label: &'static str,
    states: &[T],
    current: T,
    name: impl Fn(T) -> &'static str,
) {
    for &s in states {
        samples.sample(&[(label, name(s))], f64::from(u8::from(current == s)));
    }
}

/// Writes a 0/1 sample.
pub fn flag(samples: &mut Samples<'_>, value: &bool) {
    samples.sample(&[], f64::from(u8::from(*value)));
}

/// Writes a time sample, from milliseconds since the epoch.
pub fn timestamp(samples: &mut Samples<'_>, millis: &u64) {
    samples.sample(&[], seconds(*millis));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// One identity record of the test families: a status, a note (hostile text in
    /// some tests) and a refresh time.
    #[derive(Clone)]
    struct Rec {
        status: &'static str,
        note: &'static str,
        refreshed: u64,
    }

    fn status(samples: &mut Samples<'_>, s: &&'static str) {
        state_set(samples, "status", &["Success", "Failed"], *s, |s| s);
    }

    fn note(samples: &mut Samples<'_>, n: &&'static str) {
        samples.sample(&[("note", n)], 0.25);
    }

    const FAMILIES: &[Family<Rec>] = &[
        ses_gauge(
            "t_status",
            &Derived {
                value: |r: &Rec| Some(r.status),
                write: status,
            },
            "A status.",
        ),
        gauge(
            "t_note",
            &Derived {
                value: |r: &Rec| Some(r.note),
                write: note,
            },
            "A note.",
        ),
        gauge(
            "t_refreshed_timestamp_seconds",
            &Derived {
                value: |r: &Rec| Some(r.refreshed),
                write: timestamp,
            },
            "When.",
        ),
    ];

    /// Whether `line` is one sample of the text format: a name, `{`, label pairs
    /// with quoted values (escapes only `\\`, `\"`, `\n`), `}`, a space, a number.
    fn is_sample(line: &str) -> bool {
        let Some((name, rest)) = line.split_once('{') else {
            return false;
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return false;
        }
        let mut chars = rest.chars().peekable();
        loop {
            let label: String = chars.by_ref().take_while(|c| *c != '=').collect();
            if label.is_empty() || chars.next() != Some('"') {
                return false;
            }
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some('\\' | '"' | 'n') => {}
                        _ => return false,
                    },
                    Some('"') => break,
                    Some('\n') | None => return false,
                    Some(_) => {}
                }
            }
            match chars.next() {
                Some(',') => continue,
                Some('}') => break,
                _ => return false,
            }
        }
        let rest: String = chars.collect();
        rest.strip_prefix(' ')
            .is_some_and(|v| v.parse::<f64>().is_ok())
    }

    #[test]
    fn every_sample_is_closed_labelled_and_escaped_whatever_the_values() {
        let labels = target_labels("1111\"2222", "eu-west-1\\");
        let mut r = Renderer::new(FAMILIES, labels);
        let hostile = [
            ("quote\".example.com", "a\"b"),
            ("back\\slash.example.com", "c\\d"),
            ("new\nline@example.com", "e\nf"),
            ("plain.example.com", ""),
        ];
        let records: Vec<(&str, Rec)> = hostile
            .iter()
            .map(|(id, n)| {
                (
                    *id,
                    Rec {
                        status: "Failed",
                        note: n,
                        refreshed: 0,
                    },
                )
            })
            .collect();
        let part = r.build(records.iter().map(|(id, rec)| (*id, rec)));
        let text = Assembler::default().assemble(&[&[Arc::new(part)]]).text();
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples.len(), 4 * 4, "{text}");
        for line in &samples {
            assert!(is_sample(line), "not a valid sample: {line:?}");
            assert!(
                line.contains(
                    "{aws_account_id=\"1111\\\"2222\",aws_region=\"eu-west-1\\\\\",identity=\""
                ),
                "target labels first: {line}"
            );
        }
        assert!(text.contains(
            "t_note{aws_account_id=\"1111\\\"2222\",aws_region=\"eu-west-1\\\\\",identity=\"new\\nline@example.com\",note=\"e\\nf\"} 0.25\n"
        ));
        assert!(text.contains("identity=\"quote\\\".example.com\",status=\"Failed\"} 1\n"));
        assert!(text.contains("# HELP t_status A status. Cached: fetched from SES by the background poller, not at scrape time.\n"));
        assert!(text.contains("# HELP t_note A note.\n"));
    }

    #[test]
    fn an_account_sample_has_the_target_labels_and_no_identity() {
        let mut r = Renderer::new(FAMILIES, target_labels("111111111111", "eu-west-1"));
        let rec = Rec {
            status: "Success",
            note: "x",
            refreshed: 0,
        };
        let text = Assembler::default()
            .assemble(&[&[Arc::new(r.build_account(&rec))]])
            .text();
        assert!(text.contains(
            "t_status{aws_account_id=\"111111111111\",aws_region=\"eu-west-1\",status=\"Success\"} 1\n"
        ));
        assert!(!text.contains("identity="));
        // Without target labels (unlabelled tests), no leading comma.
        let mut bare = Renderer::new(FAMILIES, String::new());
        let text = Assembler::default()
            .assemble(&[&[Arc::new(bare.build_account(&rec))]])
            .text();
        assert!(text.contains("t_note{note=\"x\"} 0.25\n"), "{text}");
    }

    #[test]
    fn values_are_written_as_the_text_format_reads_them() {
        let mut out = String::new();
        for v in [0.0, 1.0, -1.0, 0.5, 1_733_580_000.123, 41_000.0] {
            write_value(&mut out, v);
            out.push(' ');
        }
        assert_eq!(out, "0 1 -1 0.5 1733580000.123 41000 ");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape(&mut out, "a\"b\\c\nd");
        assert_eq!(out, "a\\\"b\\\\c\\nd");
    }

    // ------------------------------------------------ pieces, reuse and the body

    use flate2::Compression;
    use std::collections::BTreeMap;
    use std::io::Read;

    type Records = BTreeMap<String, Rec>;

    fn records(n: usize, refreshed: u64) -> Records {
        (0..n)
            .map(|i| {
                let rec = Rec {
                    status: "Success",
                    note: "n",
                    refreshed,
                };
                (format!("id-{i:05}.example.com"), rec)
            })
            .collect()
    }

    fn part(r: &mut Renderer<Rec>, recs: &Records) -> Rendered {
        r.build(recs.iter().map(|(id, rec)| (id.as_str(), rec)))
    }

    fn build(r: &mut Renderer<Rec>, recs: &Records) -> Exposition {
        Assembler::default().assemble(&[&[Arc::new(part(r, recs))]])
    }

    /// Built from scratch, as a reference.
    fn fresh(recs: &Records) -> Exposition {
        build(&mut Renderer::new(FAMILIES, String::new()), recs)
    }

    fn tail() -> Piece {
        Piece::new("up 1\n", Compression::fast())
    }

    /// The whole gzip response with `tails`, decoded by a decoder that checks CRC
    /// and length.
    fn gunzip(e: &Exposition, tails: &[&Piece]) -> String {
        let body: Vec<u8> = e.gzip_with(tails).iter().flat_map(|b| b.to_vec()).collect();
        let mut out = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut out)
            .expect("valid gzip, CRC and length included");
        out
    }

    fn plain(e: &Exposition, tail: &Piece) -> String {
        let body: Vec<u8> = e
            .plain_with(&[tail])
            .iter()
            .flat_map(|b| b.to_vec())
            .collect();
        String::from_utf8(body).expect("utf-8")
    }

    #[test]
    fn empty_records_render_nothing_and_still_gzip() {
        let e = fresh(&Records::new());
        assert_eq!(e.text(), "");
        assert_eq!(gunzip(&e, &[&tail()]), "up 1\n");
        assert_eq!(gunzip(&Exposition::default(), &[&tail()]), "up 1\n");
    }

    #[test]
    fn gzip_is_one_member_equal_to_the_plain_body() {
        let e = fresh(&records(1000, 1_700_000_000));
        assert!(e.pieces() > 3 * 2, "split into pieces: {}", e.pieces());
        let t = tail();
        let text = gunzip(&e, &[&t]);
        assert_eq!(text, plain(&e, &t));
        assert!(text.ends_with("up 1\n"));
        assert!(text.contains("t_status{identity=\"id-00999.example.com\",status=\"Success\"} 1\n"));
        // Two tails (the dns collector's and the health one) in the same member.
        let dns = Piece::new("dns 1\n", Compression::fast());
        assert!(gunzip(&e, &[&dns, &t]).ends_with("dns 1\nup 1\n"));
        // One member: a decoder that stops after the first member sees everything.
        let body: Vec<u8> = e.gzip_with(&[&t]).iter().flat_map(|b| b.to_vec()).collect();
        let mut d = flate2::bufread::GzDecoder::new(&body[..]);
        let mut first = String::new();
        d.read_to_string(&mut first).expect("first member");
        assert_eq!(first, text);
        assert!(d.into_inner().is_empty(), "nothing after the first member");
    }

    #[test]
    fn unchanged_records_render_nothing_again_and_share_their_pieces() {
        let mut r = Renderer::new(FAMILIES, String::new());
        let recs = records(2000, 1_700_000_000);
        let first = build(&mut r, &recs);
        let headers = first
            .plain
            .iter()
            .filter(|p| p.starts_with(b"# HELP"))
            .count();
        assert_eq!(r.rendered_last, first.pieces() - headers);
        let second = build(&mut r, &recs);
        assert_eq!(r.rendered_last, 0);
        assert_eq!(second.text(), first.text());
        // The pieces are shared, not copied (headers come from each assembler).
        assert!(first
            .plain
            .iter()
            .zip(&second.plain)
            .filter(|(a, _)| !a.starts_with(b"# HELP"))
            .all(|(a, b)| a.as_ptr() == b.as_ptr()));
    }

    #[test]
    fn a_new_refresh_time_re_renders_only_that_family() {
        let mut r = Renderer::new(FAMILIES, String::new());
        let before = build(&mut r, &records(2000, 1_700_000_000));
        let after = build(&mut r, &records(2000, 1_700_000_060));
        let refresh_pieces = after
            .plain
            .iter()
            .filter(|p| p.starts_with(b"t_refreshed_timestamp_seconds{"))
            .count();
        assert_eq!(r.rendered_last, refresh_pieces);
        assert!(refresh_pieces < after.pieces() / 2);
        assert_ne!(before.text(), after.text());
    }

    #[test]
    fn reused_pieces_give_the_same_body_as_a_fresh_render() {
        let mut r = Renderer::new(FAMILIES, String::new());
        let mut recs = records(3000, 1_700_000_000);
        build(&mut r, &recs);
        for round in 0..8u64 {
            // Change a few statuses, drop and add identities, move some refresh times.
            let names: Vec<String> = recs.keys().cloned().collect();
            for (i, name) in names
                .iter()
                .enumerate()
                .filter(|(i, _)| (i * 7 + round as usize).is_multiple_of(97))
            {
                let status = ["Success", "Failed"][(i + round as usize) % 2];
                let rec = Rec {
                    status,
                    note: "n",
                    refreshed: 1_700_000_000 + round,
                };
                recs.insert(name.clone(), rec);
            }
            recs.remove(&names[(round as usize * 31) % names.len()]);
            let new = Rec {
                status: "Failed",
                note: "new",
                refreshed: round,
            };
            recs.insert(format!("new-{round}.example.com"), new);
            let incremental = build(&mut r, &recs);
            let reference = fresh(&recs);
            assert_eq!(incremental.text(), reference.text(), "round {round}");
            assert_eq!(
                gunzip(&incremental, &[&tail()]),
                plain(&reference, &tail()),
                "round {round}"
            );
            assert!(
                r.rendered_last < reference.pieces(),
                "round {round}: some reused"
            );
        }
    }

    #[test]
    fn targets_share_one_header_per_family_and_carry_their_labels() {
        let recs = records(3, 1_700_000_000);
        let mut a = Renderer::new(FAMILIES, target_labels("111111111111", "eu-west-1"));
        let mut b = Renderer::new(FAMILIES, target_labels("222222222222", "us-east-1"));
        let parts = [Arc::new(part(&mut a, &recs)), Arc::new(part(&mut b, &recs))];
        let e = Assembler::default().assemble(&[&parts]);
        let text = e.text();
        assert_eq!(text.matches("# TYPE t_status gauge").count(), 1);
        assert!(text.contains("t_status{aws_account_id=\"111111111111\",aws_region=\"eu-west-1\",identity=\"id-00000.example.com\",status=\"Success\"} 1\n"));
        assert!(text.contains("t_note{aws_account_id=\"222222222222\",aws_region=\"us-east-1\",identity=\"id-00002.example.com\",note=\"n\"} 0.25\n"));
        // One family's samples stay together: target b's status lines come before
        // any line of the next family.
        let last_status = text.rfind("t_status{").unwrap_or(0);
        let first_note = text.find("t_note{").unwrap_or(0);
        assert!(last_status < first_note);
        assert_eq!(gunzip(&e, &[&tail()]), plain(&e, &tail()));
    }
}
