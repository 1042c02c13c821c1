//! [`Piece`]: a run of exposition text kept beside its raw deflate blocks (ended by
//! a sync flush) and its CRC-32. Pieces compressed separately concatenate into one
//! valid deflate stream (the trick pigz uses), so a gzip body is assembled from
//! pieces without compressing anything per scrape.

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};

/// gzip member header: deflate, no flags, no mtime, no extra flags, unknown OS.
pub(super) const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// An empty final deflate block (fixed Huffman, end-of-block only).
pub(super) const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

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
