//! A connection as a tokio byte stream ([`ConnStream`]: `AsyncRead + AsyncWrite`), the user
//! handle over [`Connection`] for stream sockets.

use crate::sock::conn::{ConnError, Connection};
use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use tipc_transport::wire::MAX_USER_MSG_SIZE;

impl Connection {
    /// A tokio `AsyncRead + AsyncWrite` view (meant for [`crate::sock::conn::ConnKind::Stream`]).
    pub fn into_stream(self) -> ConnStream {
        ConnStream {
            conn: Arc::new(self),
            rd: None,
            rbuf: Bytes::new(),
            wr: None,
            shut: None,
            eof: false,
        }
    }
}

type BoxFut<T> = Pin<Box<dyn std::future::Future<Output = T>>>;

/// A connection as a tokio byte stream. Read end: `Ok(0)` after the peer's shutdown; errors
/// map to `io::Error` (`ConnectionReset`, `NotConnected`, ...). `poll_shutdown` sends the FIN
/// with `CONN_SHUTDOWN`.
pub struct ConnStream {
    conn: Arc<Connection>,
    rd: Option<BoxFut<Result<Option<Bytes>, ConnError>>>,
    rbuf: Bytes,
    wr: Option<(usize, BoxFut<Result<(), ConnError>>)>,
    shut: Option<BoxFut<Result<(), ConnError>>>,
    eof: bool,
}

fn io_err(e: ConnError) -> std::io::Error {
    use std::io::ErrorKind as K;
    let kind = match e {
        ConnError::Reset | ConnError::PeerShutdown => K::ConnectionReset,
        ConnError::Refused(_) => K::ConnectionRefused,
        ConnError::Aborted | ConnError::NoNode => K::ConnectionAborted,
        ConnError::Timeout => K::TimedOut,
        ConnError::TooLarge(_) => K::InvalidInput,
        _ => K::NotConnected,
    };
    std::io::Error::new(kind, e)
}

impl ConnStream {
    /// The connection behind the stream.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl tokio::io::AsyncRead for ConnStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = &mut *self;
        loop {
            if !me.rbuf.is_empty() {
                let n = me.rbuf.len().min(buf.remaining());
                buf.put_slice(&me.rbuf.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if me.eof {
                return Poll::Ready(Ok(()));
            }
            let fut = me.rd.get_or_insert_with(|| {
                let c = me.conn.clone();
                Box::pin(async move { c.recv().await })
            });
            match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => {
                    me.rd = None;
                    match r {
                        Ok(Some(b)) => me.rbuf = b,
                        Ok(None) => me.eof = true,
                        Err(e) => return Poll::Ready(Err(io_err(e))),
                    }
                }
            }
        }
    }
}

impl tokio::io::AsyncWrite for ConnStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let me = &mut *self;
        if me.wr.is_none() && data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if me.wr.is_none() {
            let n = data.len().min(MAX_USER_MSG_SIZE);
            // The common case: window open, link not congested: written from the caller's
            // buffer at once (one copy, no future).
            if let Some(r) = me.conn.try_send_now(&data[..n]) {
                return Poll::Ready(r.map(|_| n).map_err(io_err));
            }
            let b = Bytes::copy_from_slice(&data[..n]);
            let c = me.conn.clone();
            me.wr = Some((n, Box::pin(async move { c.send(b).await })));
        }
        let Some((n, fut)) = me.wr.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        let n = *n;
        match fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                me.wr = None;
                Poll::Ready(r.map(|_| n).map_err(io_err))
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let me = &mut *self;
        if let Some((_, fut)) = me.wr.as_mut() {
            match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => {
                    me.wr = None;
                    r.map_err(io_err)?;
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.as_mut().poll_flush(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        let me = &mut *self;
        let fut = me.shut.get_or_insert_with(|| {
            let c = me.conn.clone();
            Box::pin(async move { c.shutdown().await })
        });
        match fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => Poll::Ready(r.map_err(io_err)),
        }
    }
}
