//! The control socket between `tipc-node` and `tipcctl`: a Unix stream socket carrying
//! length-prefixed (u32, big-endian) rmp-serde frames. The client sends one [`Request`]; the node
//! answers with any number of [`Reply::Line`] frames and one [`Reply::Done`].

use crate::dgram::{err_name, sock_str, text, DgramDest};
use crate::node::Node;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;
use tipc_actors::addr::{Scope, ServiceRange, SocketAddr};
use tipc_actors::topsrv::{EventKind, Subscription};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// Largest frame accepted on the control socket.
pub const MAX_FRAME: usize = 1 << 20;

/// A management request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// `node list`.
    NodeList,
    /// `link list`.
    LinkList,
    /// `link stat show [LINK]`.
    LinkStat(Option<String>),
    /// `bearer list`.
    BearerList,
    /// `nametable show`.
    NameTable,
    /// `socket list`.
    SocketList,
    /// `listen rdm BINDING... [--echo] [--count N]`.
    ListenRdm {
        /// Ranges to bind (cluster scope).
        bindings: Vec<(u32, u32, u32)>,
        /// Send every message back to its sender.
        echo: bool,
        /// Stop after this many messages.
        count: Option<u64>,
    },
    /// `send rdm DEST [--count N] [--size BYTES] [--returnable] [--wait-replies N] [DATA]`.
    SendRdm {
        /// Destination.
        dest: DgramDest,
        /// Messages to send.
        count: u64,
        /// Pad or cut the data to this size.
        size: Option<usize>,
        /// Ask for rejected messages back.
        returnable: bool,
        /// Replies (or returned messages) to wait for.
        wait_replies: u64,
        /// How long to wait for them, in ms.
        timeout_ms: u64,
        /// The data.
        data: Vec<u8>,
    },
    /// `subscribe T:L:U [--service]`.
    Subscribe {
        /// The range.
        range: (u32, u32, u32),
        /// One event per range object instead of per binding.
        service: bool,
    },
    /// `connect (--service T:I | --socket NODE:PORT) [--stream|--seqpacket] [--implicit]
    /// [--nodelay]`: then [`Input`] frames from the client (see [`crate::conn`]).
    Connect {
        /// Destination.
        target: crate::conn::ConnTarget,
        /// Stream or seqpacket.
        kind: crate::conn::Kind,
        /// `--implicit`: the first message ("0-RTT"), which sets the connection up.
        first: Option<bytes::Bytes>,
        /// When to end the connection after the input ended.
        linger: crate::conn::Linger,
        /// `--nodelay` (`TIPC_NODELAY`): no Nagle on a stream's writes.
        nodelay: bool,
    },
    /// `listen stream|seqpacket BINDING... [--echo] [--count N]`.
    ListenConn {
        /// Stream or seqpacket.
        kind: crate::conn::Kind,
        /// Ranges to bind (cluster scope).
        bindings: Vec<(u32, u32, u32)>,
        /// Send everything back on the connection it came from.
        echo: bool,
        /// Stop after this many connections have ended.
        count: Option<u64>,
    },
    /// `node stat`: each peer node's counters (failover, synch, restarts).
    NodeStat,
}

/// A frame from the client after a [`Request::Connect`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Input {
    /// Bytes to send (one message on a seqpacket connection).
    Data(bytes::Bytes),
    /// End of input (the connection then ends as [`crate::conn::Linger`] says).
    End,
}

/// A reply frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Reply {
    /// Output text (one or more lines).
    Line(String),
    /// Bytes received on a connection (written raw to stdout).
    Data(bytes::Bytes),
    /// End of the reply; `Err` carries a message for stderr.
    Done(Result<(), String>),
}

/// Write one frame.
pub async fn write_frame<T: Serialize, W: AsyncWriteExt + Unpin>(
    w: &mut W,
    v: &T,
) -> io::Result<()> {
    let b = rmp_serde::to_vec(v).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    w.write_all(&(b.len() as u32).to_be_bytes()).await?;
    w.write_all(&b).await
}

/// Read one frame; `Ok(None)` at end of stream.
pub async fn read_frame<T: for<'de> Deserialize<'de>, R: AsyncReadExt + Unpin>(
    r: &mut R,
) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "control frame too large",
        ));
    }
    let mut b = vec![0u8; n];
    r.read_exact(&mut b).await?;
    rmp_serde::from_slice(&b)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Serve the control socket at `path` (an existing stale socket file is replaced). Runs until
/// the listener fails; spawn it on the node's actix System.
pub fn serve(node: Node, path: &Path) -> io::Result<()> {
    if path.exists() {
        // Refuse to steal a live node's socket.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "control socket {} is in use by a running node",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    actix::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let node = node.clone();
            actix::spawn(async move {
                let _ = handle(node, stream).await;
            });
        }
    });
    Ok(())
}

async fn handle(node: Node, mut s: UnixStream) -> io::Result<()> {
    let Some(req) = read_frame::<Request, _>(&mut s).await? else {
        return Ok(());
    };
    let out: Result<String, String> = match req {
        Request::NodeList => Ok(node.node_list().await),
        Request::NodeStat => Ok(node.node_stat().await),
        Request::LinkList => Ok(node.link_list().await),
        Request::LinkStat(name) => node.link_stat(name.as_deref()).await,
        Request::BearerList => Ok(node.bearer_list()),
        Request::NameTable => Ok(node.nametable_show().await),
        Request::SocketList => Ok(node.socket_list().await),
        Request::ListenRdm {
            bindings,
            echo,
            count,
        } => return listen_rdm(node, s, bindings, echo, count).await,
        Request::SendRdm {
            dest,
            count,
            size,
            returnable,
            wait_replies,
            timeout_ms,
            data,
        } => {
            let mut data = data;
            if let Some(n) = size {
                data.resize(n, b'.');
            }
            return send_rdm(
                node,
                s,
                dest,
                count,
                returnable,
                wait_replies,
                timeout_ms,
                data,
            )
            .await;
        }
        Request::Subscribe { range, service } => return subscribe(node, s, range, service).await,
        Request::Connect {
            target,
            kind,
            first,
            linger,
            nodelay,
        } => return crate::conn::connect(node, s, target, kind, first, linger, nodelay).await,
        Request::ListenConn {
            kind,
            bindings,
            echo,
            count,
        } => return crate::conn::listen(node, s, kind, bindings, echo, count).await,
    };
    match out {
        Ok(text) => {
            write_frame(&mut s, &Reply::Line(text)).await?;
            write_frame(&mut s, &Reply::Done(Ok(()))).await
        }
        Err(e) => write_frame(&mut s, &Reply::Done(Err(e))).await,
    }
}

fn range3((type_, lower, upper): (u32, u32, u32)) -> ServiceRange {
    ServiceRange {
        type_,
        lower,
        upper,
    }
}

/// Resolves when the client closes its end (or sends anything).
async fn client_gone(rd: &mut tokio::net::unix::OwnedReadHalf) {
    let mut b = [0u8; 1];
    let _ = rd.read(&mut b).await;
}

async fn listen_rdm(
    node: Node,
    s: UnixStream,
    bindings: Vec<(u32, u32, u32)>,
    echo: bool,
    count: Option<u64>,
) -> io::Result<()> {
    let (mut rd, mut wr) = s.into_split();
    let mut sock = node.transport().dgram_socket();
    for b in &bindings {
        if let Err(e) = sock.bind(range3(*b), Scope::Cluster).await {
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
async fn send_rdm(
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
            DgramDest::Range(t, l, u) => sock.send_to_range(range3((t, l, u)), &data).await,
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

async fn subscribe(
    node: Node,
    s: UnixStream,
    range: (u32, u32, u32),
    service: bool,
) -> io::Result<()> {
    let (mut rd, mut wr) = s.into_split();
    let r = range3(range);
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
            r.type_, r.lower, r.upper
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
                r.type_,
                e.found_lower,
                e.found_upper,
                sock_str(e.port)
            ),
            EventKind::Timeout => format!(
                "TIMEOUT type={} lower={} upper={}\n",
                r.type_, e.found_lower, e.found_upper
            ),
        };
        if write_frame(&mut wr, &Reply::Line(line)).await.is_err() {
            return Ok(());
        }
    }
}

/// Connect to a node's control socket, with an error that says what to check.
async fn connect_control(path: &Path) -> io::Result<UnixStream> {
    UnixStream::connect(path).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot reach node at {}: {e} (is tipc-node running with --control?)",
                path.display()
            ),
        )
    })
}

/// Client side: send `req` to the node at `path`, call `on_line` for each output frame.
pub async fn request(
    path: &Path,
    req: &Request,
    mut on_line: impl FnMut(&str),
) -> io::Result<Result<(), String>> {
    let mut s = connect_control(path).await?;
    write_frame(&mut s, req).await?;
    loop {
        match read_frame::<Reply, _>(&mut s).await? {
            Some(Reply::Line(l)) => on_line(&l),
            Some(Reply::Data(d)) => on_line(&String::from_utf8_lossy(&d)),
            Some(Reply::Done(r)) => return Ok(r),
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "node closed the control connection",
                ))
            }
        }
    }
}

/// Read the next input chunk for a connection: a line (with its `\n`, cut at
/// [`crate::conn::MAX_DATA_FRAME`]) when `lines` (seqpacket: one message per line), else what
/// one read returns (at most [`crate::conn::MAX_DATA_FRAME`] bytes). `None` at end of input.
pub async fn read_chunk<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    lines: bool,
) -> io::Result<Option<bytes::Bytes>> {
    use tokio::io::AsyncBufReadExt;
    let max = crate::conn::MAX_DATA_FRAME;
    if lines {
        let mut v = Vec::new();
        loop {
            let buf = r.fill_buf().await?;
            if buf.is_empty() {
                break;
            }
            let room = max - v.len();
            let take = buf.len().min(room);
            match buf[..take].iter().position(|&b| b == b'\n') {
                Some(p) => {
                    v.extend_from_slice(&buf[..=p]);
                    r.consume(p + 1);
                    break;
                }
                None => {
                    v.extend_from_slice(&buf[..take]);
                    r.consume(take);
                    if v.len() == max {
                        break;
                    }
                }
            }
        }
        Ok((!v.is_empty()).then(|| bytes::Bytes::from(v)))
    } else {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(None);
        }
        let take = buf.len().min(max);
        let d = bytes::Bytes::copy_from_slice(&buf[..take]);
        r.consume(take);
        Ok(Some(d))
    }
}

/// Client side of a connection command: send `req`, then pipe `input` to the node (chunks as
/// [`read_chunk`] cuts them: one message each on a seqpacket connection when `lines`) and the
/// node's data frames to `output`; event lines go to `on_line`. Returns the node's verdict.
pub async fn pipe<R, W>(
    path: &Path,
    req: &Request,
    mut input: Option<(R, bool)>,
    mut output: W,
    mut on_line: impl FnMut(&str),
) -> io::Result<Result<(), String>>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let s = connect_control(path).await?;
    let (mut rd, mut wr) = s.into_split();
    write_frame(&mut wr, req).await?;
    let input_done = input.is_none();
    let send_input = async {
        let Some((r, lines)) = input.as_mut() else {
            return io::Result::Ok(());
        };
        loop {
            match read_chunk(r, *lines).await? {
                Some(d) => write_frame(&mut wr, &Input::Data(d)).await?,
                None => {
                    write_frame(&mut wr, &Input::End).await?;
                    return Ok(());
                }
            }
        }
    };
    tokio::pin!(send_input);
    let mut input_done = input_done;
    loop {
        tokio::select! {
            r = &mut send_input, if !input_done => {
                // A node that stopped reading (connection over) is not an error here: its
                // final frame says how the connection ended.
                let _ = r;
                input_done = true;
            }
            f = read_frame::<Reply, _>(&mut rd) => match f? {
                Some(Reply::Line(l)) => on_line(&l),
                Some(Reply::Data(d)) => {
                    output.write_all(&d).await?;
                    output.flush().await?;
                }
                Some(Reply::Done(r)) => return Ok(r),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "node closed the control connection",
                    ))
                }
            }
        }
    }
}
