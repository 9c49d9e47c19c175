//! The datagram commands of `tipcctl` (`listen rdm`, `send rdm`, `subscribe`), run inside the
//! node and streamed back over the control socket as text lines.
//!
//! Output lines (stable; scripts and tests depend on them):
//!
//! * `READY sock:0xNODE:PORT` once a listener is bound;
//! * `RECV from=sock:0xNODE:PORT len=N data=TEXT` per message received (TEXT is the payload as
//!   UTF-8 with `\n`, `\r`, `\t`, `\\` and non-printable bytes escaped);
//! * `SENT count=N` after a sender sent its messages;
//! * `REPLY from=sock:0xNODE:PORT len=N data=TEXT` per reply a sender received;
//! * `RETURNED err=NAME orig_dst=sock:0xNODE:PORT len=N` per message returned to a sender
//!   (NAME: `no_name`, `no_port`, `no_node`, `overload`, `conn_shutdown`);
//! * `PUBLISHED|WITHDRAWN type=T lower=L upper=U sock=sock:0xNODE:PORT`, `TIMEOUT type=T lower=L
//!   upper=U` per subscription event.

use super::fmt::{bind_range, err_name, sock_str, text};
use super::proto::{client_gone, write_frame, DgramDest, Reply};
use crate::node::Node;
use std::io;
use tipc_actors::addr::{Scope, ServiceRange, SocketAddr};
use tipc_actors::socket::SocketError;
use tipc_actors::topsrv::{EventKind, SubError, Subscription};
use tokio::net::UnixStream;

pub(super) async fn listen_rdm(
    node: Node,
    s: UnixStream,
    bindings: Vec<(u32, u32, u32)>,
    echo: bool,
    count: Option<u64>,
) -> io::Result<()> {
    let (mut rd, mut wr) = s.into_split();
    let mut sock = node.transport().dgram_socket();
    for b in &bindings {
        let bound = match bind_range(*b) {
            Ok(r) => sock.bind(r, Scope::Cluster).await,
            Err(e) => Err(e),
        };
        if let Err(e) = bound {
            sock.close().await;
            return write_frame(&mut wr, &Reply::Done(Err(format!("bind {b:?}: {e}")))).await;
        }
    }
    write_frame(
        &mut wr,
        &Reply::Line(format!("READY {}\n", sock_str(sock.addr()))),
    )
    .await?;
    let mut got = 0u64;
    let result = loop {
        if count.is_some_and(|c| got >= c) {
            break write_frame(&mut wr, &Reply::Done(Ok(()))).await;
        }
        let m = tokio::select! {
            m = sock.recv() => m,
            _ = client_gone(&mut rd) => break Ok(()),
        };
        let Some(m) = m else { break Ok(()) };
        let line = match m.returned {
            Some(r) => format!(
                "RETURNED err={} orig_dst={} len={}\n",
                err_name(r.error),
                sock_str(r.dest),
                m.data.len()
            ),
            None => {
                got += 1;
                format!(
                    "RECV from={} len={} data={}\n",
                    sock_str(m.from),
                    m.data.len(),
                    text(&m.data)
                )
            }
        };
        if write_frame(&mut wr, &Reply::Line(line)).await.is_err() {
            break Ok(());
        }
        if echo && m.returned.is_none() {
            let _ = sock.send_to_socket(m.from, &m.data).await;
        }
    };
    sock.close().await;
    result
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn send_rdm(
    node: Node,
    s: UnixStream,
    dest: DgramDest,
    count: u64,
    returnable: bool,
    wait_replies: u64,
    timeout_ms: u64,
    data: Vec<u8>,
) -> io::Result<()> {
    let (_rd, mut wr) = s.into_split();
    let mut sock = node.transport().dgram_socket();
    sock.set_returnable(returnable);
    for _ in 0..count {
        let r = match dest {
            DgramDest::Service(t, i) => {
                sock.send_to_service(
                    tipc_actors::addr::ServiceAddr {
                        type_: t,
                        instance: i,
                    },
                    &data,
                )
                .await
            }
            DgramDest::Range(t, l, u) => match ServiceRange::new(t, l, u) {
                Ok(r) => sock.send_to_range(r, &data).await,
                Err(e) => Err(SocketError::from(e).into()),
            },
            DgramDest::Socket(n, p) => {
                sock.send_to_socket(SocketAddr { node: n, port: p }, &data)
                    .await
            }
        };
        if let Err(e) = r {
            sock.close().await;
            return write_frame(&mut wr, &Reply::Done(Err(format!("send: {e}")))).await;
        }
    }
    write_frame(&mut wr, &Reply::Line(format!("SENT count={count}\n"))).await?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    let mut got = 0;
    let mut result = Ok(());
    while got < wait_replies {
        let Ok(Some(m)) = tokio::time::timeout_at(deadline, sock.recv()).await else {
            result = Err(format!("timeout: {got} of {wait_replies} replies"));
            break;
        };
        got += 1;
        let line = match m.returned {
            Some(r) => format!(
                "RETURNED err={} orig_dst={} len={}\n",
                err_name(r.error),
                sock_str(r.dest),
                m.data.len()
            ),
            None => format!(
                "REPLY from={} len={} data={}\n",
                sock_str(m.from),
                m.data.len(),
                text(&m.data)
            ),
        };
        write_frame(&mut wr, &Reply::Line(line)).await?;
    }
    sock.close().await;
    write_frame(&mut wr, &Reply::Done(result)).await
}

pub(super) async fn subscribe(
    node: Node,
    s: UnixStream,
    range: (u32, u32, u32),
    service: bool,
) -> io::Result<()> {
    let (mut rd, mut wr) = s.into_split();
    let (type_, lower, upper) = range;
    let r = match ServiceRange::new(type_, lower, upper) {
        Ok(r) => r,
        Err(e) => {
            let e = SubError::from(e);
            return write_frame(&mut wr, &Reply::Done(Err(format!("subscribe: {e}")))).await;
        }
    };
    let sub = if service {
        Subscription::service(r)
    } else {
        Subscription::ports(r)
    };
    let mut events = match node.transport().subscribe(sub).await {
        Ok(rx) => rx,
        Err(e) => return write_frame(&mut wr, &Reply::Done(Err(format!("subscribe: {e}")))).await,
    };
    write_frame(
        &mut wr,
        &Reply::Line(format!(
            "SUBSCRIBED type={} lower={} upper={}\n",
            r.type_(),
            r.lower(),
            r.upper()
        )),
    )
    .await?;
    loop {
        let ev = tokio::select! {
            e = events.recv() => e,
            _ = client_gone(&mut rd) => return Ok(()),
        };
        let Some(e) = ev else { return Ok(()) };
        let line = match e.kind {
            EventKind::Published | EventKind::Withdrawn => format!(
                "{} type={} lower={} upper={} sock={}\n",
                if e.kind == EventKind::Published {
                    "PUBLISHED"
                } else {
                    "WITHDRAWN"
                },
                r.type_(),
                e.found_lower,
                e.found_upper,
                sock_str(e.port)
            ),
            EventKind::Timeout => format!(
                "TIMEOUT type={} lower={} upper={}\n",
                r.type_(),
                e.found_lower,
                e.found_upper
            ),
        };
        if write_frame(&mut wr, &Reply::Line(line)).await.is_err() {
            return Ok(());
        }
    }
}
