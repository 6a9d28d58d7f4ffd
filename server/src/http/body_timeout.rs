//! The request body's read timeout: at most `body_read_timeout` (`crate::config::EdgeConfig`)
//! waiting for each piece of a body, so a client that sends its head and then trickles or stalls
//! its body is answered `408 request_timeout` ([`crate::http::error::body_timeout`]) instead of
//! holding a connection and a request slot.
//!
//! tower-http's `RequestBodyTimeout` does the same but starts a timer for every piece before
//! looking at the body, so even a body already in the read buffer — every small request, the
//! sync's 96 bytes — registered and removed a timer in tokio's timer wheel twice (about 2,000
//! instructions of a "nothing changed", docs/benchmarks.md). Here the body is polled first and the
//! timer is started only when it has to wait; the wait it bounds is the same.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// The error a body gives when it waited too long for its next piece.
#[derive(Debug, thiserror::Error)]
#[error("no part of the request body arrived within the read timeout")]
pub struct BodyTimedOut;

/// `body` with at most `timeout` of waiting for each of its pieces.
pub struct TimeoutBody<B> {
    timeout: Duration,
    /// The wait in progress, if the body is waiting.
    sleep: Option<Pin<Box<Sleep>>>,
    body: B,
}

impl<B> TimeoutBody<B> {
    pub fn new(timeout: Duration, body: B) -> Self {
        Self {
            timeout,
            sleep: None,
            body,
        }
    }
}

impl<B> Body for TimeoutBody<B>
where
    B: Body + Unpin,
    B::Error: Into<tower::BoxError>,
{
    type Data = B::Data;
    type Error = tower::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            this.sleep = None;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let timeout = this.timeout;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;

    /// A body whose pieces are each there or not yet (`None`: it stalls for good, nothing wakes
    /// it).
    struct Pieces(Vec<Option<&'static [u8]>>);

    impl Body for Pieces {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            match self.0.first().copied() {
                None => Poll::Ready(None),
                Some(None) => Poll::Pending,
                Some(Some(piece)) => {
                    self.0.remove(0);
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(piece)))))
                }
            }
        }
    }

    async fn next<B: Body + Unpin>(body: &mut B) -> Option<Result<Frame<B::Data>, B::Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_is_there_is_read_without_a_timer() {
        let pieces = Pieces(vec![Some(b"ab"), Some(b"c")]);
        let mut body = TimeoutBody::new(Duration::from_secs(10), pieces);
        for expected in ["ab", "c"] {
            let frame = next(&mut body).await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), expected);
            assert!(body.sleep.is_none(), "no timer for a piece that was there");
        }
        assert!(next(&mut body).await.is_none());
        assert!(body.sleep.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out_after_the_read_timeout() {
        let pieces = Pieces(vec![Some(b"ab"), None]);
        let mut body = TimeoutBody::new(Duration::from_secs(10), pieces);
        assert!(next(&mut body).await.unwrap().is_ok());
        let started = tokio::time::Instant::now();
        let error = next(&mut body)
            .await
            .unwrap()
            .expect_err("a stalled body times out");
        assert!(error.is::<BodyTimedOut>(), "{error}");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }
}
