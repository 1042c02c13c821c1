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
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};

use crate::model::{
    BehaviorOnMxFailure, DkimAttributes, IdentityRecord, IdentityType, MailFromAttributes,
    MailFromStatus, Observation, Quota, Snapshot, Verification, VerificationStatus,
};

/// A group of identities ends after an identity whose name hashes to 0 modulo this,
/// so groups average this many identities and an identity added or removed changes
/// only the group it falls in, not every group after it.
const GROUP: u64 = 128;

/// gzip member header: deflate, no flags, no mtime, no extra flags, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// An empty final deflate block (fixed Huffman, end-of-block only).
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// Text plus its deflate blocks (ending in a sync flush, not final) and its CRC-32,
/// so bodies are assembled from pieces without reading their text again.
#[derive(Debug, Clone)]
pub struct Piece {
    pub plain: Bytes,
    pub deflate: Bytes,
    pub crc: u32,
}

impl Default for Piece {
    fn default() -> Self {
        Piece {
            plain: Bytes::new(),
            deflate: Bytes::new(),
            crc: crc32fast::hash(b""),
        }
    }
}

impl Piece {
    /// Compresses `text` and keeps an exact-size copy of it: a piece lives as long as
    /// its identities do not change, so no spare capacity is kept with it.
    pub fn new(text: &str, level: Compression) -> Piece {
        Piece::with(&mut Compress::new(level, false), text)
    }

    /// As [`Piece::new`], with a compressor to reuse (its state is ~300 KB; one per
    /// piece would churn the allocator for nothing).
    pub fn with(compressor: &mut Compress, text: &str) -> Piece {
        Piece {
            plain: Bytes::copy_from_slice(text.as_bytes()),
            deflate: Bytes::from(deflate_sync(compressor, text.as_bytes())),
            crc: crc32fast::hash(text.as_bytes()),
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

/// The identity and account exposition of every target and collector, ready to send
/// plain or gzipped.
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
    /// Builds the MAIL FROM exposition of one unlabelled snapshot from scratch (tests
    /// and one-off renders).
    pub fn build(snapshot: &Snapshot) -> Exposition {
        let part = Arc::new(Renderer::<MailFromFamilies>::new(String::new()).build(snapshot));
        Assembler::default().assemble(&[&[part]])
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

/// One metric family a collector exports: its name and HELP text.
#[derive(Debug)]
pub struct FamilyDef {
    pub name: &'static str,
    pub help: &'static str,
}

/// The families one collector renders per identity, and how. Implemented once per
/// identity collector (MAIL FROM, DKIM, verification).
pub trait Families: Send + Sync + 'static {
    /// What the collector's SES operation returns per identity.
    type Attr: Clone + PartialEq + Send + Sync + 'static;
    /// In the order they are exposed; indexes below refer to this list.
    const FAMILIES: &'static [FamilyDef];

    /// Whether the identity has lines in this family. Only identities that have been
    /// fetched are in a snapshot, so one never fetched has no series at all.
    fn includes(family: usize, record: &IdentityRecord<Self::Attr>) -> bool;
    /// Feeds exactly what [`Families::write`] reads besides the identity's name.
    fn hash_inputs(family: usize, h: &mut DefaultHasher, record: &IdentityRecord<Self::Attr>);
    fn write(family: usize, line: &mut Line<'_>, record: &IdentityRecord<Self::Attr>);
}

/// Writes the start of a sample: `name{LABELS,identity="ID` (the identity omitted
/// for account-level families); the caller writes the rest and the value.
pub struct Line<'a> {
    out: &'a mut String,
    name: &'static str,
    /// `aws_account_id="…",aws_region="…"`, escaped; empty in unlabelled tests.
    labels: &'a str,
    identity: Option<&'a str>,
}

impl<'a> Line<'a> {
    pub fn new(
        out: &'a mut String,
        name: &'static str,
        labels: &'a str,
        identity: Option<&'a str>,
    ) -> Line<'a> {
        Line {
            out,
            name,
            labels,
            identity,
        }
    }

    /// Starts a sample. With an identity the text ends inside its label value (the
    /// caller closes the quote); without one it ends after the target's labels.
    pub fn start(&mut self) -> &mut String {
        self.out.push_str(self.name);
        self.out.push('{');
        self.out.push_str(self.labels);
        if let Some(id) = self.identity {
            if !self.labels.is_empty() {
                self.out.push(',');
            }
            self.out.push_str("identity=\"");
            escape(self.out, id);
        }
        self.out
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

/// One collector's families for one target, as pieces; the [`Assembler`] puts the
/// families of every target together under one HELP/TYPE header each.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub defs: &'static [FamilyDef],
    /// One list of pieces per entry of `defs`, empty where the family has no series.
    pub families: Vec<Vec<Piece>>,
}

impl Rendered {
    pub fn empty(defs: &'static [FamilyDef]) -> Rendered {
        Rendered {
            defs,
            families: vec![Vec::new(); defs.len()],
        }
    }
}

/// Puts collectors' [`Rendered`] parts together into one exposition: family by
/// family, each family's header once, followed by every target's pieces for it (the
/// text format wants a family's samples together).
pub struct Assembler {
    headers: HashMap<&'static str, Piece>,
    compressor: Compress,
}

impl Default for Assembler {
    fn default() -> Self {
        Assembler {
            headers: HashMap::new(),
            compressor: Compress::new(Compression::default(), false),
        }
    }
}

impl Assembler {
    /// `groups`: one slice per collector, in exposition order, holding that
    /// collector's parts, one per target, in target order.
    pub fn assemble(&mut self, groups: &[&[Arc<Rendered>]]) -> Exposition {
        let mut order: Vec<Piece> = Vec::new();
        for parts in groups {
            let Some(first) = parts.first() else { continue };
            for (i, def) in first.defs.iter().enumerate() {
                let pieces: Vec<&Piece> = parts
                    .iter()
                    .filter_map(|p| p.families.get(i))
                    .flatten()
                    .collect();
                if pieces.is_empty() {
                    continue;
                }
                let compressor = &mut self.compressor;
                let header = self.headers.entry(def.name).or_insert_with(|| {
                    let text = format!(
                        "# HELP {} {}\n# TYPE {} gauge\n",
                        def.name, def.help, def.name
                    );
                    Piece::with(compressor, &text)
                });
                // Clones share the bytes.
                order.push(header.clone());
                order.extend(pieces.into_iter().cloned());
            }
        }
        // One contiguous gzip head (fewer buffers per response); the CRC of the whole
        // text is combined from the pieces' own, without reading the text again.
        let deflate_len: usize = order.iter().map(|p| p.deflate.len()).sum();
        let mut head = Vec::with_capacity(GZIP_HEADER.len() + deflate_len);
        head.extend_from_slice(&GZIP_HEADER);
        let mut crc = crc32fast::Hasher::new();
        let mut plain = Vec::with_capacity(order.len());
        let mut plain_len = 0;
        for piece in &order {
            head.extend_from_slice(&piece.deflate);
            crc.combine(&crc32fast::Hasher::new_with_initial_len(
                piece.crc,
                piece.plain.len() as u64,
            ));
            plain_len += piece.plain.len() as u64;
            plain.push(piece.plain.clone());
        }
        Exposition {
            plain,
            plain_len,
            crc: crc.finalize(),
            gzip_head: Bytes::from(head),
        }
    }
}

/// Renders one collector's snapshots of one target into pieces, keeping the previous
/// build's pieces to reuse.
pub struct Renderer<F: Families> {
    labels: String,
    pieces: HashMap<u128, Piece>,
    /// Raw deflate at the default level (6): pieces are compressed once, not per
    /// scrape, so the smaller body is worth the CPU.
    compressor: Compress,
    /// Where a piece is rendered before being copied out at its exact size.
    scratch: String,
    /// Pieces rendered (not reused) by the last build, for tests and debug logs.
    pub rendered_last: usize,
    _families: std::marker::PhantomData<F>,
}

impl<F: Families> Renderer<F> {
    /// A renderer whose samples carry `labels` (see [`target_labels`]).
    pub fn new(labels: String) -> Renderer<F> {
        Renderer {
            labels,
            pieces: HashMap::new(),
            compressor: Compress::new(Compression::default(), false),
            scratch: String::new(),
            rendered_last: 0,
            _families: std::marker::PhantomData,
        }
    }

    pub fn build(&mut self, snapshot: &Snapshot<F::Attr>) -> Rendered {
        let mut next: HashMap<u128, Piece> = HashMap::with_capacity(self.pieces.len());
        let mut out = Rendered::empty(F::FAMILIES);
        let mut rendered = 0;
        let ends: Vec<bool> = snapshot.keys().map(|id| ends_group(id)).collect();

        for family in 0..F::FAMILIES.len() {
            let mut group: Vec<(&str, &IdentityRecord<F::Attr>)> = Vec::new();
            let mut key = Key::new(family);
            for ((id, record), &end) in snapshot.iter().zip(&ends) {
                if !F::includes(family, record) {
                    continue;
                }
                key.feed::<F>(family, id, record);
                group.push((id, record));
                if end {
                    rendered +=
                        self.place(&mut next, &mut out.families[family], family, key, &group);
                    group.clear();
                    key = Key::new(family);
                }
            }
            if !group.is_empty() {
                rendered += self.place(&mut next, &mut out.families[family], family, key, &group);
            }
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
        family: usize,
        key: Key,
        group: &[(&str, &IdentityRecord<F::Attr>)],
    ) -> usize {
        let key = key.finish();
        if let Some(piece) = next.get(&key) {
            pieces.push(piece.clone());
            return 0;
        }
        let (piece, fresh) = match self.pieces.remove(&key) {
            Some(piece) => (piece, 0),
            None => {
                self.scratch.clear();
                let name = F::FAMILIES[family].name;
                for (id, record) in group {
                    let mut line = Line::new(&mut self.scratch, name, &self.labels, Some(id));
                    F::write(family, &mut line, record);
                }
                (Piece::with(&mut self.compressor, &self.scratch), 1)
            }
        };
        pieces.push(piece.clone());
        next.insert(key, piece);
        fresh
    }
}

/// Two independent 64-bit SipHash states over the same inputs: a 128-bit fingerprint,
/// so a stale piece is reused only if two hashes collide at once.
#[derive(Clone)]
struct Key(DefaultHasher, DefaultHasher);

impl Key {
    fn new(family: usize) -> Key {
        let mut a = DefaultHasher::new();
        let mut b = DefaultHasher::new();
        (0xa5u8, family).hash(&mut a);
        (0x5au8, family).hash(&mut b);
        Key(a, b)
    }

    fn feed<F: Families>(&mut self, family: usize, id: &str, record: &IdentityRecord<F::Attr>) {
        id.hash(&mut self.0);
        id.hash(&mut self.1);
        F::hash_inputs(family, &mut self.0, record);
        F::hash_inputs(family, &mut self.1, record);
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

/// The `mail_from` collector's families (`GetIdentityMailFromDomainAttributes`).
pub struct MailFromFamilies;

const STATUS: usize = 0;
const BEHAVIOR: usize = 1;
const INFO: usize = 2;
const CONFIGURED: usize = 3;
const EXISTS: usize = 4;
const REJECTED: usize = 5;
const REFRESH: usize = 6;

impl Families for MailFromFamilies {
    type Attr = MailFromAttributes;
    const FAMILIES: &'static [FamilyDef] = &[
        FamilyDef {
            name: "aws_ses_identity_mail_from_status",
            help: "Status of the identity's custom MAIL FROM domain as SES reports it (MailFromDomainStatus), as a state set: the series of the current status is 1; Unknown when SES sent none or a value this build does not know. Only for identities with a custom MAIL FROM domain. Cached: fetched from SES by the background poller, not at scrape time.",
        },
        FamilyDef {
            name: "aws_ses_identity_mail_from_behavior_on_mx_failure",
            help: "What SES does with mail while the MAIL FROM domain is not in Success (BehaviorOnMXFailure), as a state set: the series of the current behavior is 1; Unknown when SES sent none or a value this build does not know. Cached: fetched from SES by the background poller, not at scrape time.",
        },
        FamilyDef {
            name: "aws_ses_identity_mail_from_info",
            help: "The identity's type and custom MAIL FROM domain (empty when none is configured, or when SES reported a MAIL FROM status without naming the domain: see aws_ses_identity_mail_from_configured); always 1. Cached: fetched from SES by the background poller, not at scrape time.",
        },
        FamilyDef {
            name: "aws_ses_identity_mail_from_configured",
            help: "1 if the identity has a custom MAIL FROM domain (SES named one or reported a status for one), 0 if mail uses SES's default MAIL FROM. Cached: fetched from SES by the background poller, not at scrape time.",
        },
        FamilyDef {
            name: "aws_ses_identity_exists",
            help: "1 if SES returned the identity, 0 if it was asked for but left out (the identity does not exist in this account and region, or is not visible to these credentials). Cached: fetched from SES by the background poller, not at scrape time.",
        },
        FamilyDef {
            name: "aws_ses_identity_rejected",
            help: "1 for an identity SES refuses as invalid (InvalidParameterValue when asked for it alone); its other series are absent and aws_ses_identity_exists is 0. Cached: fetched from SES by the background poller, not at scrape time.",
        },
        FamilyDef {
            name: "aws_ses_identity_last_refresh_timestamp_seconds",
            help: "Unix time at which SES last answered GetIdentityMailFromDomainAttributes for this identity; a failed fetch leaves it unchanged. Cached: fetched from SES by the background poller, not at scrape time.",
        },
    ];

    fn includes(family: usize, record: &IdentityRecord<MailFromAttributes>) -> bool {
        match (family, &record.observation) {
            (STATUS, Observation::Present(a)) => a.configured(),
            (BEHAVIOR | INFO | CONFIGURED, o) => matches!(o, Observation::Present(_)),
            (REJECTED, o) => matches!(o, Observation::Rejected),
            (EXISTS | REFRESH, _) => true,
            _ => false,
        }
    }

    fn hash_inputs(
        family: usize,
        h: &mut DefaultHasher,
        record: &IdentityRecord<MailFromAttributes>,
    ) {
        match (family, &record.observation) {
            (STATUS, Observation::Present(a)) => a.exported_status().hash(h),
            (BEHAVIOR, Observation::Present(a)) => a.behavior.hash(h),
            (INFO, Observation::Present(a)) => a.domain.hash(h),
            (CONFIGURED, Observation::Present(a)) => a.configured().hash(h),
            (EXISTS, o) => matches!(o, Observation::Present(_)).hash(h),
            (REFRESH, _) => unix_millis(record.refreshed_at).hash(h),
            _ => {}
        }
    }

    fn write(family: usize, line: &mut Line<'_>, record: &IdentityRecord<MailFromAttributes>) {
        match (family, &record.observation) {
            (STATUS, Observation::Present(a)) => {
                for s in MailFromStatus::ALL {
                    let out = line.start();
                    let _ = writeln!(
                        out,
                        "\",status=\"{}\"}} {}",
                        s.as_str(),
                        u8::from(a.exported_status() == s)
                    );
                }
            }
            (BEHAVIOR, Observation::Present(a)) => {
                for b in BehaviorOnMxFailure::ALL {
                    let out = line.start();
                    let _ = writeln!(
                        out,
                        "\",behavior=\"{}\"}} {}",
                        b.as_str(),
                        u8::from(a.behavior == b)
                    );
                }
            }
            (INFO, Observation::Present(a)) => {
                let identity_type = line.identity.map(IdentityType::of);
                let out = line.start();
                let _ = write!(
                    out,
                    "\",identity_type=\"{}\",mail_from_domain=\"",
                    identity_type.map_or("", IdentityType::as_str)
                );
                escape(out, a.domain.as_deref().unwrap_or(""));
                out.push_str("\"} 1\n");
            }
            (CONFIGURED, Observation::Present(a)) => {
                let _ = writeln!(line.start(), "\"}} {}", u8::from(a.configured()));
            }
            (EXISTS, o) => {
                let exists = matches!(o, Observation::Present(_));
                let _ = writeln!(line.start(), "\"}} {}", u8::from(exists));
            }
            (REJECTED, _) => line.start().push_str("\"} 1\n"),
            (REFRESH, _) => write_refresh(line, record.refreshed_at),
            _ => {}
        }
    }
}

fn write_refresh(line: &mut Line<'_>, at: SystemTime) {
    let _ = writeln!(line.start(), "\"}} {}", unix_millis(at) as f64 / 1000.0);
}

fn write_state_set<T: Copy + PartialEq>(
    line: &mut Line<'_>,
    states: &[T],
    current: T,
    name: impl Fn(T) -> &'static str,
) {
    for &s in states {
        let out = line.start();
        let _ = writeln!(
            out,
            "\",status=\"{}\"}} {}",
            name(s),
            u8::from(current == s)
        );
    }
}

/// The `dkim` collector's families (`GetIdentityDkimAttributes`).
pub struct DkimFamilies;

impl Families for DkimFamilies {
    type Attr = DkimAttributes;
    const FAMILIES: &'static [FamilyDef] = &[
        FamilyDef {
            name: "aws_ses_identity_dkim_enabled",
            help: "1 if SES signs the identity's mail with Easy DKIM (DkimEnabled), 0 if not; absent when SES's answer left DkimEnabled out. Cached: fetched from SES by the background poller, not at scrape time.",
        },
        FamilyDef {
            name: "aws_ses_identity_dkim_status",
            help: "DKIM verification status of the identity as SES reports it (DkimVerificationStatus), as a state set: the series of the current status is 1; Unknown when SES sent none or a value this build does not know. Cached: fetched from SES by the background poller, not at scrape time.",
        },
        FamilyDef {
            name: "aws_ses_identity_dkim_last_refresh_timestamp_seconds",
            help: "Unix time at which SES last answered GetIdentityDkimAttributes for this identity; a failed fetch leaves it unchanged. Cached: fetched from SES by the background poller, not at scrape time.",
        },
    ];

    fn includes(family: usize, record: &IdentityRecord<DkimAttributes>) -> bool {
        match (family, &record.observation) {
            (0, Observation::Present(a)) => a.enabled.is_some(),
            (1, Observation::Present(_)) | (2, _) => true,
            _ => false,
        }
    }

    fn hash_inputs(family: usize, h: &mut DefaultHasher, record: &IdentityRecord<DkimAttributes>) {
        match (family, &record.observation) {
            (0, Observation::Present(a)) => a.enabled.hash(h),
            (1, Observation::Present(a)) => a.status.hash(h),
            (2, _) => unix_millis(record.refreshed_at).hash(h),
            _ => {}
        }
    }

    fn write(family: usize, line: &mut Line<'_>, record: &IdentityRecord<DkimAttributes>) {
        match (family, &record.observation) {
            (0, Observation::Present(a)) => {
                if let Some(enabled) = a.enabled {
                    let _ = writeln!(line.start(), "\"}} {}", u8::from(enabled));
                }
            }
            (1, Observation::Present(a)) => write_state_set(
                line,
                &VerificationStatus::ALL,
                a.status,
                VerificationStatus::as_str,
            ),
            (2, _) => write_refresh(line, record.refreshed_at),
            _ => {}
        }
    }
}

/// The `verification` collector's families (`GetIdentityVerificationAttributes`).
pub struct VerificationFamilies;

impl Families for VerificationFamilies {
    type Attr = Verification;
    const FAMILIES: &'static [FamilyDef] = &[
        FamilyDef {
            name: "aws_ses_identity_verification_status",
            help: "Verification status of the identity as SES reports it (VerificationStatus), as a state set: the series of the current status is 1; Unknown when SES sent none or a value this build does not know. Cached: fetched from SES by the background poller, not at scrape time.",
        },
        FamilyDef {
            name: "aws_ses_identity_verification_last_refresh_timestamp_seconds",
            help: "Unix time at which SES last answered GetIdentityVerificationAttributes for this identity; a failed fetch leaves it unchanged. Cached: fetched from SES by the background poller, not at scrape time.",
        },
    ];

    fn includes(family: usize, record: &IdentityRecord<Verification>) -> bool {
        family == 1 || matches!(record.observation, Observation::Present(_))
    }

    fn hash_inputs(family: usize, h: &mut DefaultHasher, record: &IdentityRecord<Verification>) {
        match (family, &record.observation) {
            (0, Observation::Present(a)) => a.status.hash(h),
            (1, _) => unix_millis(record.refreshed_at).hash(h),
            _ => {}
        }
    }

    fn write(family: usize, line: &mut Line<'_>, record: &IdentityRecord<Verification>) {
        match (family, &record.observation) {
            (0, Observation::Present(a)) => write_state_set(
                line,
                &VerificationStatus::ALL,
                a.status,
                VerificationStatus::as_str,
            ),
            (1, _) => write_refresh(line, record.refreshed_at),
            _ => {}
        }
    }
}

/// The `quota` collector's families: account level, one series each per target.
pub const QUOTA_FAMILIES: &[FamilyDef] = &[
    FamilyDef {
        name: "aws_ses_send_quota_max_emails",
        help: "Emails the account may send in 24 hours in this region (GetSendQuota Max24HourSend); -1 means unlimited; absent when SES's answer left it out. Cached: fetched from SES by the background poller, not at scrape time.",
    },
    FamilyDef {
        name: "aws_ses_send_quota_max_send_rate",
        help: "Emails per second the account may send in this region (GetSendQuota MaxSendRate); absent when SES's answer left it out. Cached: fetched from SES by the background poller, not at scrape time.",
    },
    FamilyDef {
        name: "aws_ses_send_quota_sent_emails",
        help: "Emails the account sent in this region in the last 24 hours (GetSendQuota SentLast24Hours); absent when SES's answer left it out. Cached: fetched from SES by the background poller, not at scrape time.",
    },
    FamilyDef {
        name: "aws_ses_send_quota_last_refresh_timestamp_seconds",
        help: "Unix time at which SES last answered GetSendQuota; a failed call leaves it unchanged. Cached: fetched from SES by the background poller, not at scrape time.",
    },
    FamilyDef {
        name: "aws_ses_account_sending_enabled",
        help: "1 if email sending is enabled for the account in this region (GetAccountSendingEnabled), 0 if it is paused (by AWS or the account); absent when SES's answer left Enabled out. Cached: fetched from SES by the background poller, not at scrape time.",
    },
    FamilyDef {
        name: "aws_ses_account_sending_enabled_last_refresh_timestamp_seconds",
        help: "Unix time at which SES last answered GetAccountSendingEnabled; a failed call leaves it unchanged. Cached: fetched from SES by the background poller, not at scrape time.",
    },
];

/// Renders the quota collector's last answers for one target. Account-level values
/// are a handful of lines, so they are rendered whole whenever they change.
pub fn render_quota(labels: &str, quota: &Quota, compressor: &mut Compress) -> Rendered {
    let mut out = Rendered::empty(QUOTA_FAMILIES);
    let mut text = String::new();
    let mut put = |family: usize, value: f64| {
        text.clear();
        let mut line = Line::new(&mut text, QUOTA_FAMILIES[family].name, labels, None);
        let _ = writeln!(line.start(), "}} {value}");
        out.families[family].push(Piece::with(compressor, &text));
    };
    // A number SES left out has no series: the refresh time still says SES answered.
    if let Some((q, at)) = &quota.send_quota {
        for (family, value) in [
            (0, q.max_24_hour_send),
            (1, q.max_send_rate),
            (2, q.sent_last_24_hours),
        ] {
            if let Some(v) = value {
                put(family, v);
            }
        }
        put(3, unix_millis(*at) as f64 / 1000.0);
    }
    if let Some((enabled, at)) = &quota.sending_enabled {
        if let Some(enabled) = enabled {
            put(4, f64::from(u8::from(*enabled)));
        }
        put(5, unix_millis(*at) as f64 / 1000.0);
    }
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
                status: Some(status),
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

    fn renderer() -> Renderer<MailFromFamilies> {
        Renderer::new(String::new())
    }

    fn build(r: &mut Renderer<MailFromFamilies>, snap: &Snapshot) -> Exposition {
        Assembler::default().assemble(&[&[Arc::new(r.build(snap))]])
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
        let mut r = renderer();
        let snap = snapshot(2000, 1_700_000_000);
        let first = build(&mut r, &snap);
        let headers = first
            .plain
            .iter()
            .filter(|p| p.starts_with(b"# HELP"))
            .count();
        assert_eq!(r.rendered_last, first.pieces() - headers);
        let second = build(&mut r, &snap);
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
        let mut r = renderer();
        let before = build(&mut r, &snapshot(2000, 1_700_000_000));
        let after = build(&mut r, &snapshot(2000, 1_700_000_060));
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
        let mut r = renderer();
        let mut snap = snapshot(3000, 1_700_000_000);
        let statuses = MailFromStatus::ALL;
        build(&mut r, &snap);
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
            let incremental = build(&mut r, &snap);
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

    #[test]
    fn targets_share_one_header_per_family_and_carry_their_labels() {
        let snap = snapshot(3, 1_700_000_000);
        let mut a = Renderer::<MailFromFamilies>::new(target_labels("111111111111", "eu-west-1"));
        let mut b = Renderer::<MailFromFamilies>::new(target_labels("222222222222", "us-east-1"));
        let parts = [Arc::new(a.build(&snap)), Arc::new(b.build(&snap))];
        let e = Assembler::default().assemble(&[&parts]);
        let text = e.text();
        assert_eq!(
            text.matches("# TYPE aws_ses_identity_mail_from_status gauge")
                .count(),
            1
        );
        assert!(text.contains("aws_ses_identity_mail_from_status{aws_account_id=\"111111111111\",aws_region=\"eu-west-1\",identity=\"id-00000.example.com\",status=\"Success\"} 1\n"));
        assert!(text.contains("aws_ses_identity_exists{aws_account_id=\"222222222222\",aws_region=\"us-east-1\",identity=\"id-00002.example.com\"} 1\n"));
        // One family's samples stay together: target b's status lines come before
        // any line of the next family.
        let last_status = text.rfind("aws_ses_identity_mail_from_status{").unwrap();
        let first_behavior = text
            .find("aws_ses_identity_mail_from_behavior_on_mx_failure{")
            .unwrap();
        assert!(last_status < first_behavior);
        assert_eq!(gunzip(&e, &tail()), plain(&e, &tail()));
    }

    #[test]
    fn quota_lines_have_the_targets_labels_and_only_known_values() {
        let labels = target_labels("111111111111", "eu-west-1");
        let mut c = Compress::new(Compression::fast(), false);
        let nothing = render_quota(&labels, &Quota::default(), &mut c);
        assert!(
            nothing.families.iter().all(Vec::is_empty),
            "nothing invented"
        );
        let quota = Quota {
            send_quota: Some((
                crate::model::SendQuota {
                    max_24_hour_send: Some(50_000.0),
                    max_send_rate: None,
                    sent_last_24_hours: Some(41_000.0),
                },
                UNIX_EPOCH + Duration::from_secs(10),
            )),
            sending_enabled: Some((None, UNIX_EPOCH + Duration::from_secs(10))),
        };
        let part = Arc::new(render_quota(&labels, &quota, &mut c));
        let text = Assembler::default().assemble(&[&[part]]).text();
        assert!(text.contains("aws_ses_send_quota_sent_emails{aws_account_id=\"111111111111\",aws_region=\"eu-west-1\"} 41000\n"));
        // Left out by SES: no series, but the answer's time is there.
        assert!(
            !text.contains("aws_ses_send_quota_max_send_rate{"),
            "{text}"
        );
        assert!(!text.contains("aws_ses_account_sending_enabled{"), "{text}");
        assert!(text.contains("aws_ses_account_sending_enabled_last_refresh_timestamp_seconds{"));
    }
}
