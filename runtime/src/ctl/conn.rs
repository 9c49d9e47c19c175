//! The connection commands of `tipcctl` (`connect`, `listen stream|seqpacket`), run inside the
//! node: the control socket becomes a pipe between `tipcctl`'s stdin/stdout and a TIPC
//! connection.
//!
//! Frames after the request: the node sends [`Reply::Line`] (event lines, which `tipcctl`
//! prints on stderr), [`Reply::Data`] (received bytes, printed raw on stdout) and one final
//! [`Reply::Done`]; `tipcctl connect` sends [`Input::Data`] (bytes read from stdin: one message
//! each for a seqpacket connection) and [`Input::End`] at end of input (the connection is shut
//! down, as `shutdown()`).
//!
//! Event lines (stable; scripts and tests depend on them):
//!
//! * `CONNECTED sock=sock:0xNODE:PORT peer=sock:0xNODE:PORT kind=stream|seqpacket
//!   [implicit=1]` once a client's connection is set up;
//! * `READY sock=sock:0xNODE:PORT kind=stream|seqpacket` once a listener is bound;
//! * `ACCEPT conn=N peer=sock:0xNODE:PORT` per accepted connection (N counts from 1);
//! * `CLOSED conn=N reason=eof|ERROR sent=BYTES received=BYTES` when a connection ends (`eof`: the
//!   peer shut down; otherwise why it broke, e.g. `no_node`, `reset`).

use super::fmt::{bind_range, conn_error_text, range_debug, reason, sock_str};
use super::proto::{client_gone, read_frame, write_frame, ConnTarget, Input, Kind, Linger, Reply};
use crate::node::Node;
use bytes::Bytes;
use std::io;
use tipc_actors::addr::Scope;
use tipc_actors::sock::conn::{ConnError, Connection};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

/// `tipcctl connect`: set up the connection, then pipe. At end of input the connection stays
/// open for what the peer still sends (TIPC has no half-close: `shutdown()` ends both ways)
/// until the peer ends it or `linger` says to stop.
pub(super) async fn connect(
    node: Node,
    s: UnixStream,
    target: ConnTarget,
    kind: Kind,
    first: Option<Bytes>,
    linger: Linger,
    nodelay: bool,
) -> io::Result<()> {
    let (mut rd, mut wr) = s.into_split();
    let t = node.transport();
    let implicit = first.is_some();
    let conn = match first {
        Some(d) => t.connect_with(target.dest(), kind.conn(), d).await,
        None => t.connect(target.dest(), kind.conn()).await,
    };
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            return write_frame(
                &mut wr,
                &Reply::Done(Err(format!("connect: {}", conn_error_text(&e)))),
            )
            .await;
        }
    };
    conn.set_nodelay(nodelay);
    write_frame(
        &mut wr,
        &Reply::Line(format!(
            "CONNECTED sock={} peer={} kind={}{}\n",
            sock_str(conn.local()),
            sock_str(conn.peer()),
            kind.name(),
            if implicit { " implicit=1" } else { "" }
        )),
    )
    .await?;
    let mut received = 0u64;
    // stdin -> connection, while connection -> stdout.
    let to_peer = async {
        loop {
            match read_frame::<Input, _>(&mut rd).await {
                Ok(Some(Input::Data(d))) => conn.send(d).await?,
                Ok(Some(Input::End)) => return Ok::<bool, ConnError>(true),
                // tipcctl went away: close the connection.
                Ok(None) | Err(_) => return Ok(false),
            }
        }
    };
    tokio::pin!(to_peer);
    let mut input_over = false;
    let mut idle_deadline: Option<tokio::time::Instant> = None;
    let result: Result<(), String> = loop {
        if input_over && linger.expect.is_some_and(|n| received >= n) {
            break conn
                .shutdown()
                .await
                .map_err(|e| format!("shutdown: {}", conn_error_text(&e)));
        }
        let idle = async {
            match idle_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = &mut to_peer, if !input_over => match r {
                Ok(true) => {
                    input_over = true;
                    idle_deadline = linger.idle_ms.map(|ms| {
                        tokio::time::Instant::now() + std::time::Duration::from_millis(ms)
                    });
                }
                Ok(false) => break Ok(()),
                Err(e) => break Err(format!("connection broken: {}", conn_error_text(&e))),
            },
            r = conn.recv() => match r {
                Ok(Some(d)) => {
                    received += d.len() as u64;
                    if write_frame(&mut wr, &Reply::Data(d)).await.is_err() {
                        break Ok(());
                    }
                    if let (true, Some(ms)) = (input_over, linger.idle_ms) {
                        idle_deadline = Some(
                            tokio::time::Instant::now() + std::time::Duration::from_millis(ms),
                        );
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(format!("connection broken: {}", conn_error_text(&e))),
            },
            _ = idle => break conn.shutdown().await.map_err(|e| format!("shutdown: {}", conn_error_text(&e))),
        }
    };
    conn.close().await;
    write_frame(&mut wr, &Reply::Done(result)).await
}

/// `tipcctl listen stream|seqpacket`: accept connections; echo or forward their data.
pub(super) async fn listen(
    node: Node,
    s: UnixStream,
    kind: Kind,
    bindings: Vec<(u32, u32, u32)>,
    echo: bool,
    count: Option<u64>,
) -> io::Result<()> {
    let (mut rd, mut wr) = s.into_split();
    let listener = node.transport().conn_listener(kind.conn());
    for &b in &bindings {
        let bound = match bind_range(b) {
            Ok(r) => listener.bind(r, Scope::Cluster).await,
            Err(e) => Err(e),
        };
        if let Err(e) = bound {
            listener.close().await;
            let r = range_debug(b);
            return write_frame(&mut wr, &Reply::Done(Err(format!("bind {r}: {e}")))).await;
        }
    }
    write_frame(
        &mut wr,
        &Reply::Line(format!(
            "READY sock={} kind={}\n",
            sock_str(listener.local()),
            kind.name()
        )),
    )
    .await?;
    // Every connection task sends its output frames here; this task writes them in order. A
    // bounded channel: a slow tipcctl reader slows the connections (flow control end to end).
    let (tx, mut rx) = mpsc::channel::<Reply>(16);
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel::<()>();
    // When the listener ends, so do its connections (shut down: the peers see end-of-stream).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut next = 0u64;
    let mut closed = 0u64;
    let result = loop {
        if count.is_some_and(|c| closed >= c) {
            break Ok(());
        }
        tokio::select! {
            c = listener.accept() => match c {
                Ok(conn) => {
                    next += 1;
                    let id = next;
                    let line = format!("ACCEPT conn={id} peer={}\n", sock_str(conn.peer()));
                    if write_frame(&mut wr, &Reply::Line(line)).await.is_err() {
                        break Ok(());
                    }
                    let tx = tx.clone();
                    let closed_tx = closed_tx.clone();
                    let stop = stop_rx.clone();
                    actix::spawn(async move {
                        serve_conn(id, conn, echo, tx, stop).await;
                        let _ = closed_tx.send(());
                    });
                }
                Err(e) => break Err(format!("accept: {}", conn_error_text(&e))),
            },
            Some(f) = rx.recv() => {
                if write_frame(&mut wr, &f).await.is_err() {
                    break Ok(());
                }
            }
            Some(()) = closed_rx.recv() => closed += 1,
            _ = client_gone(&mut rd) => break Ok(()),
        }
    };
    let _ = stop_tx.send(true);
    // Flush what the connection tasks already produced.
    while let Ok(f) = rx.try_recv() {
        if write_frame(&mut wr, &f).await.is_err() {
            break;
        }
    }
    listener.close().await;
    write_frame(&mut wr, &Reply::Done(result)).await
}

/// One accepted connection: echo (`--echo`) or forward to tipcctl's stdout; on the peer's
/// shutdown, or when the listener ends (`stop`), shut down.
async fn serve_conn(
    id: u64,
    conn: Connection,
    echo: bool,
    out: mpsc::Sender<Reply>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut received = 0u64;
    let mut sent = 0u64;
    let reason = loop {
        let r = tokio::select! {
            r = conn.recv() => r,
            _ = stop.wait_for(|s| *s) => {
                let _ = conn.shutdown().await;
                break "listener_closed".to_string();
            }
        };
        match r {
            Ok(Some(d)) => {
                received += d.len() as u64;
                if echo {
                    let n = d.len() as u64;
                    if let Err(e) = conn.send(d).await {
                        break reason(&e);
                    }
                    sent += n;
                } else if out.send(Reply::Data(d)).await.is_err() {
                    break "listener_gone".to_string();
                }
            }
            Ok(None) => {
                let _ = conn.shutdown().await;
                break "eof".to_string();
            }
            Err(e) => break reason(&e),
        }
    };
    conn.close().await;
    let _ = out
        .send(Reply::Line(format!(
            "CLOSED conn={id} reason={reason} sent={sent} received={received}\n"
        )))
        .await;
}
