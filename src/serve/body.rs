//! The response body every route answers with: ready-made chunks (the cached
//! identity body, the per-scrape tail, a page's text) sent as they are, stepping
//! back now and then so one large body cannot hold a worker, and telling the
//! connection's [`Tracker`] of each chunk taken and of the response's end.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::tracking::Tracker;

/// A response body of ready-made chunks: the cached identity body and the per-scrape
/// tail go out as they are, without being copied into one buffer.
pub struct Chunks {
    chunks: VecDeque<Bytes>,
    remaining: u64,
    /// Bytes handed out since this body last let other connections run.
    since_yield: usize,
    /// The request this body answers, for the connection's watch: each chunk taken
    /// is progress, and the request ends when the body is dropped.
    tracker: Option<Tracker>,
}

/// After this many bytes a body steps back once (wakes itself and returns `Pending`),
/// so the other connections on the worker get their turn: without it one scraper of
/// a 10 MB plain body can send whole responses back to back while the others wait.
/// nginx does the same with `sendfile_max_chunk` (2 MB).
const YIELD_EVERY: usize = 1 << 20;

impl Chunks {
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Chunks {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Chunks {
            chunks,
            remaining,
            since_yield: 0,
            tracker: None,
        }
    }

    pub(super) fn track(&mut self, tracker: Tracker) {
        self.tracker = Some(tracker);
    }

    pub(super) fn text(s: impl Into<Bytes>) -> Chunks {
        Chunks::new([s.into()])
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.since_yield >= YIELD_EVERY && !self.chunks.is_empty() {
            self.since_yield = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let next = self.chunks.pop_front();
        if let Some(chunk) = &next {
            self.remaining -= chunk.len() as u64;
            self.since_yield += chunk.len();
        }
        // hyper asks for the next chunk only when the previous one has room to go
        // (HTTP/1.1: its write buffer drained; HTTP/2: the stream has window), so
        // a chunk taken is the response moving.
        if let Some(tracker) = &self.tracker {
            tracker.progress();
        }
        Poll::Ready(next.map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn chunks_report_their_exact_size() {
        let body = Chunks::new([
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"de"),
        ]);
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
    }

    #[test]
    fn a_large_body_steps_back_between_chunks_and_loses_nothing() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let chunk = Bytes::from(vec![b'x'; YIELD_EVERY / 2 + 1]);
        let mut body = Chunks::new(std::iter::repeat_n(chunk, 6));
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        let (mut bytes, mut pending) = (0, 0);
        loop {
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => bytes += frame.into_data().map_or(0, |d| d.len()),
                Poll::Ready(None) => break,
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Pending => pending += 1,
            }
        }
        assert_eq!(bytes, 6 * (YIELD_EVERY / 2 + 1));
        assert_eq!(
            pending, 2,
            "one step back after every 2 chunks but the last"
        );
        assert_eq!(wakes.0.load(Ordering::SeqCst), pending, "woken every time");
    }
}
