//! The body scrapes send: [`Rendered`] parts (one collector, one target) put
//! together by the [`Assembler`] into an [`Exposition`], family by family under one
//! header each, and the gzip framing around the pieces' deflate blocks.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use flate2::{Compress, Compression};

use super::piece::{Piece, FINAL_BLOCK, GZIP_HEADER};

/// The exposition of every collector of every target, ready to send
/// plain or gzipped.
#[derive(Debug, Clone)]
pub struct Exposition {
    /// The pieces' text, in order; shared with the next exposition where unchanged.
    pub(crate) plain: Vec<Bytes>,
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
    /// The plain body: the collectors' pieces, then the `tails` (the health metrics).
    pub fn plain_with(&self, tails: &[&Piece]) -> Vec<Bytes> {
        let mut parts = Vec::with_capacity(self.plain.len() + tails.len());
        parts.extend(self.plain.iter().cloned());
        parts.extend(tails.iter().map(|t| t.plain.clone()));
        parts
    }

    /// The gzip body: one member holding the collectors' pieces and the `tails`. Only
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

    /// The collectors' text alone (no tails), for tests and golden files.
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

/// One collector's families for one target, as pieces; the [`Assembler`] puts the
/// families of every target together under one HELP/TYPE header each.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    /// Every family of the collector's table, in its order, with its pieces (none
    /// where the family has no series).
    pub families: Vec<RenderedFamily>,
}

/// One family's pieces for one target.
#[derive(Debug, Clone)]
pub struct RenderedFamily {
    pub header: Header,
    pub pieces: Vec<Piece>,
}

/// What a family's `# HELP` and `# TYPE` lines say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricType,
    /// Fetched from SES by the background poller: the HELP says so, in
    /// [`CACHED`]'s words.
    pub cached: bool,
}

/// What the HELP of every family fetched from SES ends with (Prometheus' guide:
/// say when values are cached rather than read at scrape time).
pub const CACHED: &str = "Cached: fetched from SES by the background poller, not at scrape time.";

/// A family's metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Gauge,
}

impl MetricType {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Gauge => "gauge",
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
            for (i, family) in first.families.iter().enumerate() {
                let def = family.header;
                let pieces: Vec<&Piece> = parts
                    .iter()
                    .filter_map(|p| p.families.get(i))
                    .flat_map(|f| &f.pieces)
                    .collect();
                if pieces.is_empty() {
                    continue;
                }
                let compressor = &mut self.compressor;
                let header = self.headers.entry(def.name).or_insert_with(|| {
                    let cached = if def.cached { CACHED } else { "" };
                    let gap = if def.cached { " " } else { "" };
                    let text = format!(
                        "# HELP {} {}{gap}{cached}\n# TYPE {} {}\n",
                        def.name,
                        def.help,
                        def.name,
                        def.kind.as_str()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

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
        let body: Vec<u8> = e.gzip_with(&[&t]).iter().flat_map(|b| b.to_vec()).collect();
        let mut out = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut out)
            .expect("valid gzip, CRC and length included");
        assert_eq!(out, text);
    }
}
