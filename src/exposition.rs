//! The identity part of a scrape, pre-rendered and pre-compressed, kept as pieces that
//! survive from one snapshot to the next.
//!
//! A piece is one family's lines for a run of consecutive identities (or a family's
//! HELP/TYPE header), with its text compressed on its own as raw deflate blocks ending
//! in a sync flush. Pieces compressed separately concatenate into one valid deflate
//! stream (the trick pigz uses), so a gzip response is a header, the pieces' deflate
//! bytes, the per-scrape tail's, an empty final block and a trailer.
//!
//! Each piece is keyed by a 128-bit fingerprint of exactly the inputs its text depends
//! on. Building the next exposition re-renders only pieces whose inputs changed and
//! shares the rest with the one being served, so the moment a new snapshot is built
//! beside the old one costs the changed pieces, not a second copy of the body. In a
//! steady account that is the refresh-timestamp family alone.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};

use crate::model::{
    BehaviorOnMxFailure, IdentityRecord, IdentityType, MailFromAttributes, MailFromStatus,
    Observation, Snapshot,
};

/// Appended to the HELP of every identity family: the values are not fetched at
/// scrape time, as the Prometheus exporter guidelines ask to make clear.
const CACHED: &str = "Cached: fetched from SES by the background poller, not at scrape time.";

/// A group of identities ends after an identity whose name hashes to 0 modulo this,
/// so groups average this many identities and an identity added or removed changes
/// only the group it falls in, not every group after it.
const GROUP: u64 = 128;

/// gzip member header: deflate, no flags, no mtime, no extra flags, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// An empty final deflate block (fixed Huffman, end-of-block only).
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// Text plus its deflate blocks (ending in a sync flush, not final).
#[derive(Debug, Clone, Default)]
pub struct Piece {
    pub plain: Bytes,
    pub deflate: Bytes,
}

impl Piece {
    /// Compresses `text` and keeps an exact-size copy of it: a piece lives as long as
    /// its identities do not change, so no spare capacity is kept with it.
    pub fn new(text: &str, level: Compression) -> Piece {
        Piece::with(&mut Compress::new(level, false), text)
    }

    /// As [`Piece::new`], with a compressor to reuse (its state is ~300 KB; one per
    /// piece would churn the allocator for nothing).
    fn with(compressor: &mut Compress, text: &str) -> Piece {
        Piece {
            plain: Bytes::copy_from_slice(text.as_bytes()),
            deflate: Bytes::from(deflate_sync(compressor, text.as_bytes())),
        }
    }
}

/// Raw deflate of `data`, ended by a sync flush so the output is byte-aligned and has
/// no final block: another piece's blocks can follow it in the same stream.
fn deflate_sync(compressor: &mut Compress, data: &[u8]) -> Vec<u8> {
    compressor.reset();
    let start_in = compressor.total_in();
    let mut out = Vec::with_capacity(data.len() / 8 + 64);
    loop {
        let consumed = (compressor.total_in() - start_in) as usize;
        // Compressing into a Vec has no error to report but a full buffer, handled here.
        let _ = compressor.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync);
        let all_in = (compressor.total_in() - start_in) as usize == data.len();
        // zlib's rule: the flush is complete once a call ends with output space left.
        if all_in && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(256));
    }
    out.shrink_to_fit();
    out
}

/// The identity exposition of one snapshot, ready to send plain or gzipped.
#[derive(Debug, Clone)]
pub struct Exposition {
    /// The pieces' text, in order; shared with the next exposition where unchanged.
    plain: Vec<Bytes>,
    plain_len: u64,
    /// CRC-32 of the whole plain text.
    crc: u32,
    /// The gzip header followed by every piece's deflate blocks: a gzip member that
    /// only lacks the tail, the final block and the trailer.
    gzip_head: Bytes,
}

impl Default for Exposition {
    fn default() -> Self {
        Exposition {
            plain: Vec::new(),
            plain_len: 0,
            crc: crc32fast::hash(b""),
            gzip_head: Bytes::from_static(&GZIP_HEADER),
        }
    }
}

impl Exposition {
    /// Builds the exposition of `snapshot` from scratch (tests and one-off renders).
    pub fn build(snapshot: &Snapshot) -> Exposition {
        Renderer::default().build(snapshot)
    }

    /// The plain body: the identity pieces, then the `tails` (the dns collector's
    /// families, the health metrics).
    pub fn plain_with(&self, tails: &[&Piece]) -> Vec<Bytes> {
        let mut parts = Vec::with_capacity(self.plain.len() + tails.len());
        parts.extend(self.plain.iter().cloned());
        parts.extend(tails.iter().map(|t| t.plain.clone()));
        parts
    }

    /// The gzip body: one member holding the identity pieces and the `tails`. Only
    /// the trailer is computed per scrape (the CRC continued over the tails).
    pub fn gzip_with(&self, tails: &[&Piece]) -> Vec<Bytes> {
        let mut crc = crc32fast::Hasher::new_with_initial(self.crc);
        let mut size = self.plain_len;
        let mut parts = Vec::with_capacity(tails.len() + 2);
        parts.push(self.gzip_head.clone());
        for tail in tails {
            crc.update(&tail.plain);
            size += tail.plain.len() as u64;
            parts.push(tail.deflate.clone());
        }
        // ISIZE is the length modulo 2^32, as RFC 1952 defines it.
        let mut end = Vec::with_capacity(FINAL_BLOCK.len() + 8);
        end.extend_from_slice(&FINAL_BLOCK);
        end.extend_from_slice(&crc.finalize().to_le_bytes());
        end.extend_from_slice(&(size as u32).to_le_bytes());
        parts.push(Bytes::from(end));
        parts
    }

    /// The identity text alone, for tests and golden files.
    pub fn text(&self) -> String {
        let mut out = Vec::with_capacity(self.plain_len as usize);
        for part in &self.plain {
            out.extend_from_slice(part);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Number of pieces, for tests.
    pub fn pieces(&self) -> usize {
        self.plain.len()
    }
}

/// Renders snapshots into expositions, keeping the previous build's pieces to reuse.
pub struct Renderer {
    pieces: HashMap<u128, Piece>,
    /// Raw deflate at the default level (6): pieces are compressed once, not per
    /// scrape, so the smaller body is worth the CPU.
    compressor: Compress,
    /// Where a piece is rendered before being copied out at its exact size.
    scratch: String,
    /// Pieces rendered (not reused) by the last build, for tests and debug logs.
    pub rendered_last: usize,
}

impl Default for Renderer {
    fn default() -> Self {
        Renderer {
            pieces: HashMap::new(),
            compressor: Compress::new(Compression::default(), false),
            scratch: String::new(),
            rendered_last: 0,
        }
    }
}

impl Renderer {
    pub fn build(&mut self, snapshot: &Snapshot) -> Exposition {
        let mut next: HashMap<u128, Piece> = HashMap::with_capacity(self.pieces.len());
        let mut order: Vec<u128> = Vec::new();
        let mut rendered = 0;
        let ends: Vec<bool> = snapshot.keys().map(|id| ends_group(id)).collect();

        for family in Family::ALL {
            let mut members = snapshot
                .iter()
                .zip(&ends)
                .filter(|((_, r), _)| family.includes(r))
                .peekable();
            if members.peek().is_none() {
                continue;
            }
            let key = Key::new(family, true);
            rendered += self.place(&mut next, &mut order, key.finish(), |out| {
                let _ = writeln!(out, "# HELP {} {} {CACHED}", family.name(), family.help());
                let _ = writeln!(out, "# TYPE {} gauge", family.name());
            });
            let mut group: Vec<(&str, &IdentityRecord)> = Vec::new();
            let mut key = Key::new(family, false);
            for ((id, record), &end) in members {
                key.feed(family, id, record);
                group.push((id, record));
                if end {
                    rendered += self.place_group(&mut next, &mut order, family, key, &group);
                    group.clear();
                    key = Key::new(family, false);
                }
            }
            if !group.is_empty() {
                rendered += self.place_group(&mut next, &mut order, family, key, &group);
            }
        }

        // One contiguous gzip head; every kept piece's deflate becomes a slice of it, so
        // the previous head is freed once the exposition still being served goes.
        let deflate_len: usize = order.iter().map(|k| next[k].deflate.len()).sum();
        let mut head = Vec::with_capacity(GZIP_HEADER.len() + deflate_len);
        head.extend_from_slice(&GZIP_HEADER);
        let mut spans = Vec::with_capacity(order.len());
        for key in &order {
            let start = head.len();
            head.extend_from_slice(&next[key].deflate);
            spans.push(start..head.len());
        }
        let head = Bytes::from(head);
        let mut plain = Vec::with_capacity(order.len());
        let mut crc = crc32fast::Hasher::new();
        let mut plain_len = 0;
        for (key, span) in order.iter().zip(spans) {
            if let Some(piece) = next.get_mut(key) {
                piece.deflate = head.slice(span);
                crc.update(&piece.plain);
                plain_len += piece.plain.len() as u64;
                plain.push(piece.plain.clone());
            }
        }
        self.pieces = next;
        self.rendered_last = rendered;
        // A long identity list can leave a large scratch buffer; keep a modest one.
        self.scratch.shrink_to(64 * 1024);
        Exposition {
            plain,
            plain_len,
            crc: crc.finalize(),
            gzip_head: head,
        }
    }

    fn place_group(
        &mut self,
        next: &mut HashMap<u128, Piece>,
        order: &mut Vec<u128>,
        family: Family,
        key: Key,
        group: &[(&str, &IdentityRecord)],
    ) -> usize {
        self.place(next, order, key.finish(), |out| {
            for (id, record) in group {
                family.write(out, id, record);
            }
        })
    }

    /// Puts the piece for `key` next in `order`: the previous build's if it has one,
    /// else a fresh render. Returns 1 when it rendered.
    fn place(
        &mut self,
        next: &mut HashMap<u128, Piece>,
        order: &mut Vec<u128>,
        key: u128,
        render: impl FnOnce(&mut String),
    ) -> usize {
        order.push(key);
        if next.contains_key(&key) {
            return 0;
        }
        match self.pieces.remove(&key) {
            Some(piece) => {
                next.insert(key, piece);
                0
            }
            None => {
                self.scratch.clear();
                render(&mut self.scratch);
                next.insert(key, Piece::with(&mut self.compressor, &self.scratch));
                1
            }
        }
    }
}

/// Two independent 64-bit SipHash states over the same inputs: a 128-bit fingerprint,
/// so a stale piece is reused only if two hashes collide at once.
#[derive(Clone)]
struct Key(DefaultHasher, DefaultHasher);

impl Key {
    fn new(family: Family, header: bool) -> Key {
        let mut a = DefaultHasher::new();
        let mut b = DefaultHasher::new();
        (0xa5u8, family as u8, header).hash(&mut a);
        (0x5au8, family as u8, header).hash(&mut b);
        Key(a, b)
    }

    fn feed(&mut self, family: Family, id: &str, record: &IdentityRecord) {
        family.hash_inputs(&mut self.0, id, record);
        family.hash_inputs(&mut self.1, id, record);
    }

    fn finish(&self) -> u128 {
        (u128::from(self.0.finish()) << 64) | u128::from(self.1.finish())
    }
}

fn ends_group(id: &str) -> bool {
    let mut h = DefaultHasher::new();
    (0x33u8, id).hash(&mut h);
    h.finish().is_multiple_of(GROUP)
}

/// The identity families, in the order they are exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Status,
    Behavior,
    Info,
    Configured,
    Exists,
    Rejected,
    Refresh,
}

impl Family {
    const ALL: [Family; 7] = [
        Family::Status,
        Family::Behavior,
        Family::Info,
        Family::Configured,
        Family::Exists,
        Family::Rejected,
        Family::Refresh,
    ];

    fn name(self) -> &'static str {
        match self {
            Family::Status => "aws_ses_identity_mail_from_status",
            Family::Behavior => "aws_ses_identity_mail_from_behavior_on_mx_failure",
            Family::Info => "aws_ses_identity_mail_from_info",
            Family::Configured => "aws_ses_identity_mail_from_configured",
            Family::Exists => "aws_ses_identity_exists",
            Family::Rejected => "aws_ses_identity_rejected",
            Family::Refresh => "aws_ses_identity_last_refresh_timestamp_seconds",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Family::Status => "Status of the identity's custom MAIL FROM domain as SES reports it (MailFromDomainStatus), as a state set: the series of the current status is 1. Only for identities with a custom MAIL FROM domain.",
            Family::Behavior => "What SES does with mail while the MAIL FROM domain is not in Success (BehaviorOnMXFailure), as a state set. Both 0 when SES returned no or an unrecognised value.",
            Family::Info => "The identity's type and custom MAIL FROM domain (empty when none is configured); always 1.",
            Family::Configured => "1 if the identity has a custom MAIL FROM domain, 0 if mail uses SES's default MAIL FROM.",
            Family::Exists => "1 if SES returned the identity, 0 if it was asked for but left out (the identity does not exist in this region, or is not visible to these credentials).",
            Family::Rejected => "1 for an identity SES refuses as invalid (InvalidParameterValue when asked for it alone); its other series are absent and aws_ses_identity_exists is 0.",
            Family::Refresh => "Unix time at which SES last answered for this identity; a failed fetch leaves it unchanged.",
        }
    }

    /// Whether the identity has lines in this family. Only identities that have been
    /// fetched are in a snapshot, so one never fetched has no series at all.
    fn includes(self, record: &IdentityRecord) -> bool {
        match (self, &record.observation) {
            (Family::Status, Observation::Present(a)) => a.configured(),
            (Family::Behavior | Family::Info | Family::Configured, o) => {
                matches!(o, Observation::Present(_))
            }
            (Family::Status, Observation::Missing | Observation::Rejected) => false,
            (Family::Rejected, o) => matches!(o, Observation::Rejected),
            (Family::Exists | Family::Refresh, _) => true,
        }
    }

    /// Feeds exactly what [`Family::write`] reads for this identity.
    fn hash_inputs(self, h: &mut impl Hasher, id: &str, record: &IdentityRecord) {
        id.hash(h);
        match (self, &record.observation) {
            (Family::Status, Observation::Present(a)) => a.status.hash(h),
            (Family::Behavior, Observation::Present(a)) => a.behavior.hash(h),
            (Family::Info, Observation::Present(a)) => a.domain.hash(h),
            (Family::Configured, Observation::Present(a)) => a.configured().hash(h),
            (Family::Exists, o) => matches!(o, Observation::Present(_)).hash(h),
            (Family::Refresh, _) => unix_millis(record.refreshed_at).hash(h),
            (Family::Rejected, _) => {}
            // Not included in these families; nothing is written.
            (_, Observation::Missing | Observation::Rejected) => {}
        }
    }

    fn write(self, out: &mut String, id: &str, record: &IdentityRecord) {
        let name = self.name();
        match (self, &record.observation) {
            (Family::Status, Observation::Present(a)) => {
                for s in MailFromStatus::ALL {
                    sample_start(out, name, id);
                    let _ = writeln!(
                        out,
                        "\",status=\"{}\"}} {}",
                        s.as_str(),
                        u8::from(a.status == s)
                    );
                }
            }
            (Family::Behavior, Observation::Present(a)) => {
                for b in BehaviorOnMxFailure::EXPORTED {
                    sample_start(out, name, id);
                    let _ = writeln!(
                        out,
                        "\",behavior=\"{}\"}} {}",
                        b.as_str(),
                        u8::from(a.behavior == b)
                    );
                }
            }
            (Family::Info, Observation::Present(a)) => write_info(out, name, id, a),
            (Family::Configured, Observation::Present(a)) => {
                sample_start(out, name, id);
                let _ = writeln!(out, "\"}} {}", u8::from(a.configured()));
            }
            (Family::Exists, o) => {
                sample_start(out, name, id);
                let _ = writeln!(
                    out,
                    "\"}} {}",
                    u8::from(matches!(o, Observation::Present(_)))
                );
            }
            (Family::Rejected, _) => {
                sample_start(out, name, id);
                out.push_str("\"} 1\n");
            }
            (Family::Refresh, _) => {
                sample_start(out, name, id);
                let _ = writeln!(
                    out,
                    "\"}} {}",
                    unix_millis(record.refreshed_at) as f64 / 1000.0
                );
            }
            (_, Observation::Missing | Observation::Rejected) => {}
        }
    }
}

fn write_info(out: &mut String, name: &str, id: &str, a: &MailFromAttributes) {
    sample_start(out, name, id);
    let _ = write!(
        out,
        "\",identity_type=\"{}\",mail_from_domain=\"",
        IdentityType::of(id).as_str()
    );
    escape(out, a.domain.as_deref().unwrap_or(""));
    out.push_str("\"} 1\n");
}

/// `name{identity="ID` — the caller writes the rest of the labels and the value.
fn sample_start(out: &mut String, name: &str, id: &str) {
    out.push_str(name);
    out.push_str("{identity=\"");
    escape(out, id);
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

/// Renders every identity family of a snapshot as text (tests and golden files).
pub fn render_identities(snapshot: &Snapshot) -> String {
    Exposition::build(snapshot).text()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MailFromStatus;
    use std::io::Read;
    use std::time::Duration;

    fn record(status: MailFromStatus, refreshed: u64) -> IdentityRecord {
        IdentityRecord {
            observation: Observation::Present(MailFromAttributes {
                domain: Some("mail.example.com".into()),
                status,
                behavior: BehaviorOnMxFailure::RejectMessage,
            }),
            refreshed_at: UNIX_EPOCH + Duration::from_secs(refreshed),
        }
    }

    fn snapshot(n: usize, refreshed: u64) -> Snapshot {
        (0..n)
            .map(|i| {
                (
                    format!("id-{i:05}.example.com"),
                    record(MailFromStatus::Success, refreshed),
                )
            })
            .collect()
    }

    fn tail() -> Piece {
        Piece::new("up 1\n", Compression::fast())
    }

    /// The whole gzip response, decoded by a decoder that checks CRC and length.
    fn gunzip(e: &Exposition, tail: &Piece) -> String {
        let body: Vec<u8> = e
            .gzip_with(&[tail])
            .iter()
            .flat_map(|b| b.to_vec())
            .collect();
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
    fn incompressible_text_survives_the_output_growing() {
        use rand::Rng;
        let mut rng = rand::rng();
        let text: String = (0..300_000)
            .map(|_| char::from(rng.random_range(b'!'..=b'~')))
            .collect();
        let e = Exposition::default();
        let t = Piece::new(&text, Compression::default());
        assert!(t.deflate.len() > text.len() / 8 + 64, "output had to grow");
        assert_eq!(gunzip(&e, &t), text);
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape(&mut out, "a\"b\\c\nd");
        assert_eq!(out, "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn empty_snapshot_renders_nothing_and_still_gzips() {
        let e = Exposition::build(&Snapshot::new());
        assert_eq!(e.text(), "");
        assert_eq!(gunzip(&e, &tail()), "up 1\n");
        assert_eq!(gunzip(&Exposition::default(), &tail()), "up 1\n");
    }

    #[test]
    fn gzip_is_one_member_equal_to_the_plain_body() {
        let snap = snapshot(1000, 1_700_000_000);
        let e = Exposition::build(&snap);
        assert!(e.pieces() > 6 * 2, "split into pieces: {}", e.pieces());
        let t = tail();
        let text = gunzip(&e, &t);
        assert_eq!(text, plain(&e, &t));
        assert!(text.ends_with("up 1\n"));
        assert!(text.contains(
            "aws_ses_identity_mail_from_status{identity=\"id-00999.example.com\",status=\"Success\"} 1\n"
        ));
        // Two tails (the dns collector's and the health one) in the same member.
        let dns = Piece::new("dns 1\n", Compression::fast());
        let both: Vec<u8> = e
            .gzip_with(&[&dns, &t])
            .iter()
            .flat_map(|b| b.to_vec())
            .collect();
        let mut two = String::new();
        flate2::read::GzDecoder::new(&both[..])
            .read_to_string(&mut two)
            .expect("valid gzip with two tails");
        assert!(two.ends_with("dns 1\nup 1\n"));
        // One member: a decoder that stops after the first member sees everything.
        let body: Vec<u8> = e.gzip_with(&[&t]).iter().flat_map(|b| b.to_vec()).collect();
        let mut d = flate2::bufread::GzDecoder::new(&body[..]);
        let mut first = String::new();
        d.read_to_string(&mut first).expect("first member");
        assert_eq!(first, text);
        assert!(d.into_inner().is_empty(), "nothing after the first member");
    }

    #[test]
    fn an_unchanged_snapshot_renders_nothing_again() {
        let mut r = Renderer::default();
        let snap = snapshot(2000, 1_700_000_000);
        let first = r.build(&snap);
        assert_eq!(r.rendered_last, first.pieces());
        let second = r.build(&snap);
        assert_eq!(r.rendered_last, 0);
        assert_eq!(second.text(), first.text());
        // The pieces are shared, not copied.
        assert!(first
            .plain
            .iter()
            .zip(&second.plain)
            .all(|(a, b)| a.as_ptr() == b.as_ptr()));
    }

    #[test]
    fn a_new_refresh_time_re_renders_only_that_family() {
        let mut r = Renderer::default();
        let before = r.build(&snapshot(2000, 1_700_000_000));
        let after = r.build(&snapshot(2000, 1_700_000_060));
        let refresh_pieces = after
            .plain
            .iter()
            .filter(|p| p.starts_with(b"aws_ses_identity_last_refresh_timestamp_seconds{"))
            .count();
        assert_eq!(r.rendered_last, refresh_pieces);
        assert!(refresh_pieces < after.pieces() / 4);
        assert_ne!(before.text(), after.text());
    }

    #[test]
    fn reused_pieces_give_the_same_body_as_a_fresh_render() {
        let mut r = Renderer::default();
        let mut snap = snapshot(3000, 1_700_000_000);
        let statuses = MailFromStatus::ALL;
        r.build(&snap);
        for round in 0..8u64 {
            // Change a few statuses, drop and add identities, move some refresh times.
            let names: Vec<String> = snap.keys().cloned().collect();
            for (i, name) in names
                .iter()
                .enumerate()
                .filter(|(i, _)| (i * 7 + round as usize).is_multiple_of(97))
            {
                let rec = record(statuses[(i + round as usize) % 5], 1_700_000_000 + round);
                snap.insert(name.clone(), rec);
            }
            snap.remove(&names[(round as usize * 31) % names.len()]);
            snap.insert(
                format!("new-{round}.example.com"),
                record(MailFromStatus::Failed, round),
            );
            snap.insert(
                format!("gone-{round}@example.com"),
                IdentityRecord {
                    observation: Observation::Missing,
                    refreshed_at: UNIX_EPOCH,
                },
            );
            let incremental = r.build(&snap);
            let fresh = Exposition::build(&snap);
            assert_eq!(incremental.text(), fresh.text(), "round {round}");
            assert_eq!(
                gunzip(&incremental, &tail()),
                plain(&fresh, &tail()),
                "round {round}"
            );
            assert!(
                r.rendered_last < fresh.pieces(),
                "round {round}: some pieces reused"
            );
        }
    }
}
