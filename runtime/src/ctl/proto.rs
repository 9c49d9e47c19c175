//! The control socket's frames: length-prefixed (u32, big-endian) rmp-serde values, each at
//! most [`MAX_FRAME`] bytes. The client sends one [`Request`]; the node answers with any number
//! of [`Reply::Line`] and [`Reply::Data`] frames and one [`Reply::Done`]. After a
//! [`Request::Connect`] the client also sends [`Input`] frames.
//!
//! Replies have no size limit: a table is streamed as [`Reply::Line`] frames of at most
//! [`TEXT_CHUNK`] bytes of text each, cut at line ends ([`write_rows`]), which the client
//! prints as they come; a frame never exceeds [`MAX_FRAME`] ([`write_frame`] refuses to send
//! one), so neither side holds more than one frame of a reply.

use serde::{Deserialize, Serialize};
use std::io;
use tipc_actors::addr::{ServiceAddr, SocketAddr};
use tipc_actors::sock::conn::{ConnDest, ConnKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest frame accepted (and sent) on the control socket.
pub const MAX_FRAME: usize = 1 << 20;

/// Largest data chunk `tipcctl` reads from its input for a stream connection at once.
pub const MAX_DATA_FRAME: usize = 65536;

/// Largest message a datagram or a seqpacket connection carries (`TIPC_MAX_USER_MSG_SIZE`):
/// the limit of `send rdm --size` and of one input line of `connect --seqpacket`.
pub const MAX_MESSAGE: usize = tipc_transport::wire::MAX_USER_MSG_SIZE;

/// Most text one [`Reply::Line`] frame of a table carries (a longer reply comes in several
/// frames; see [`write_rows`]).
pub const TEXT_CHUNK: usize = 64 * 1024;

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
    /// [--nodelay]`: then [`Input`] frames from the client (see [`super::conn`]).
    Connect {
        /// Destination.
        target: ConnTarget,
        /// Stream or seqpacket.
        kind: Kind,
        /// `--implicit`: the first message ("0-RTT"), which sets the connection up.
        first: Option<bytes::Bytes>,
        /// When to end the connection after the input ended.
        linger: Linger,
        /// `--nodelay` (`TIPC_NODELAY`): no Nagle on a stream's writes.
        nodelay: bool,
    },
    /// `listen stream|seqpacket BINDING... [--echo] [--count N]`.
    ListenConn {
        /// Stream or seqpacket.
        kind: Kind,
        /// Ranges to bind (cluster scope).
        bindings: Vec<(u32, u32, u32)>,
        /// Send everything back on the connection it came from.
        echo: bool,
        /// Stop after this many connections have ended.
        count: Option<u64>,
    },
    /// `node stat`: each peer node's counters (failover, synch, restarts).
    NodeStat,
    /// `node set key KEY [algname ALG] [nodeid ID] [master] [rekeying N|now]`, the arguments
    /// as iproute2's `tipc node set key` takes them (the client has put a key read from a
    /// file in their place, in hex).
    NodeSetKey(Vec<String>),
    /// `node flush key`: remove every key.
    NodeFlushKey,
    /// `link set broadcast BROADCAST|REPLICAST|AUTOSELECT`: the node-wide multicast method.
    LinkSetBroadcast(BcastMode),
    /// `link get broadcast`.
    LinkGetBroadcast,
    /// `group join T:I [--events] [--loopback] [--echo] [--scope node|cluster] [--count N]
    /// [--timeout MS]`.
    GroupJoin {
        /// Group type and member instance.
        member: (u32, u32),
        /// Node scope (else cluster).
        node_scope: bool,
        /// Member events.
        events: bool,
        /// Loopback.
        loopback: bool,
        /// Answer each message with a unicast `echo:TEXT`.
        echo: bool,
        /// Stop after this many messages.
        count: Option<u64>,
        /// Stop after this many ms.
        timeout_ms: Option<u64>,
    },
    /// `group send T:I [--wait-members N] [--count N] [--seq] [--scope node|cluster]
    /// ACTION...`.
    GroupSend(GroupSendReq),
}

/// The node-wide multicast method, as iproute2's `tipc link set broadcast` names it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum BcastMode {
    /// Always the broadcast link.
    Broadcast,
    /// Always replicast.
    Replicast,
    /// By the ratio (the default).
    Autoselect,
}

/// What `group send` asks for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupSendReq {
    /// Group type and member instance.
    pub member: (u32, u32),
    /// Node scope (else cluster).
    pub node_scope: bool,
    /// Other members to wait for before sending.
    pub wait_members: usize,
    /// Rounds of the whole action list.
    pub count: u64,
    /// Number the messages `DATA-NNNNNN`.
    pub seq: bool,
    /// The actions, in order.
    pub actions: Vec<GroupAction>,
}

/// One action of `group send`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum GroupAction {
    /// `bcast DATA`.
    Bcast(Vec<u8>),
    /// `mcast INST DATA`.
    Mcast(u32, Vec<u8>),
    /// `anycast INST DATA`.
    Anycast(u32, Vec<u8>),
    /// `ucast sock:0xNODE:PORT DATA`.
    Ucast(u32, u32, Vec<u8>),
}

/// A frame from the client after a [`Request::Connect`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Input {
    /// Bytes to send (one message on a seqpacket connection).
    Data(bytes::Bytes),
    /// End of input (the connection then ends as [`Linger`] says).
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

/// Where `send rdm` sends.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum DgramDest {
    /// `--service T:I` (anycast).
    Service(u32, u32),
    /// `--range T:L:U` (multicast).
    Range(u32, u32, u32),
    /// `--socket NODE:PORT` (unicast).
    Socket(u32, u32),
}

impl DgramDest {
    /// As a service address, if it is one.
    pub fn service(&self) -> Option<ServiceAddr> {
        match *self {
            DgramDest::Service(type_, instance) => Some(ServiceAddr { type_, instance }),
            _ => None,
        }
    }
}

/// The kind of a connection, as `tipcctl` names it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Kind {
    /// `--stream` / `listen stream`: SOCK_STREAM.
    Stream,
    /// `--seqpacket` / `listen seqpacket`: SOCK_SEQPACKET.
    Seqpacket,
}

impl Kind {
    /// The transport's connection kind.
    pub fn conn(self) -> ConnKind {
        match self {
            Kind::Stream => ConnKind::Stream,
            Kind::Seqpacket => ConnKind::Seqpacket,
        }
    }

    /// The word in output lines (`kind=stream`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Stream => "stream",
            Kind::Seqpacket => "seqpacket",
        }
    }
}

/// Where `connect` goes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ConnTarget {
    /// `--service T:I`.
    Service(u32, u32),
    /// `--socket NODE:PORT`.
    Socket(u32, u32),
}

impl ConnTarget {
    /// The transport's connection destination.
    pub fn dest(self) -> ConnDest {
        match self {
            ConnTarget::Service(type_, instance) => {
                ConnDest::Service(ServiceAddr { type_, instance })
            }
            ConnTarget::Socket(node, port) => ConnDest::Socket(SocketAddr { node, port }),
        }
    }
}

/// When `tipcctl connect` ends the connection after its input ended.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Linger {
    /// Shut down once this many bytes have been received in all (`--expect`).
    pub expect: Option<u64>,
    /// Shut down after this many ms without data from the peer (`--linger`); `Some(0)`: at once.
    pub idle_ms: Option<u64>,
}

/// Write one frame. A value that encodes to more than [`MAX_FRAME`] bytes is not sent (the
/// other side would refuse it): `InvalidInput`.
pub async fn write_frame<T: Serialize, W: AsyncWriteExt + Unpin>(
    w: &mut W,
    v: &T,
) -> io::Result<()> {
    let b = rmp_serde::to_vec(v).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if b.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "control frame of {} bytes exceeds {MAX_FRAME} bytes",
                b.len()
            ),
        ));
    }
    w.write_all(&(b.len() as u32).to_be_bytes()).await?;
    w.write_all(&b).await
}

/// Stream text rows as [`Reply::Line`] frames of at most [`TEXT_CHUNK`] bytes each (rows are
/// gathered until the next one would overflow the chunk; a row longer than a chunk is cut at
/// character boundaries). Each row should end with `\n`. Memory: one chunk, whatever the
/// number of rows.
pub async fn write_rows<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    rows: impl IntoIterator<Item = String>,
) -> io::Result<()> {
    let mut chunk = String::new();
    for row in rows {
        if !chunk.is_empty() && chunk.len() + row.len() > TEXT_CHUNK {
            write_frame(w, &Reply::Line(std::mem::take(&mut chunk))).await?;
        }
        let mut rest = row.as_str();
        while chunk.len() + rest.len() > TEXT_CHUNK {
            let mut cut = TEXT_CHUNK - chunk.len();
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            chunk.push_str(&rest[..cut]);
            rest = &rest[cut..];
            write_frame(w, &Reply::Line(std::mem::take(&mut chunk))).await?;
        }
        chunk.push_str(rest);
    }
    if !chunk.is_empty() {
        write_frame(w, &Reply::Line(chunk)).await?;
    }
    Ok(())
}

/// Read one frame; `Ok(None)` at end of stream. A frame announced over [`MAX_FRAME`] bytes is
/// refused before anything is read or allocated for it; the buffer grows with what arrives.
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
            format!("control frame of {n} bytes exceeds {MAX_FRAME} bytes"),
        ));
    }
    let mut b = Vec::with_capacity(n.min(64 * 1024));
    (&mut *r).take(n as u64).read_to_end(&mut b).await?;
    if b.len() < n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "control connection closed inside a frame",
        ));
    }
    rmp_serde::from_slice(&b)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Resolves when the client closes its end of the control connection (or sends anything: a
/// streaming command's client sends nothing after its request).
pub(crate) async fn client_gone(rd: &mut tokio::net::unix::OwnedReadHalf) {
    let mut b = [0u8; 1];
    let _ = rd.read(&mut b).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_end_of_stream_is_none() {
        let mut buf = Vec::new();
        let req = Request::LinkStat(Some("a:udp0-b:udp0".into()));
        write_frame(&mut buf, &req).await.unwrap();
        write_frame(&mut buf, &Reply::Done(Err("no".into())))
            .await
            .unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame::<Request, _>(&mut r).await.unwrap(), Some(req));
        assert_eq!(
            read_frame::<Reply, _>(&mut r).await.unwrap(),
            Some(Reply::Done(Err("no".into())))
        );
        assert_eq!(read_frame::<Reply, _>(&mut r).await.unwrap(), None);
    }

    #[tokio::test]
    async fn oversized_frame_is_refused() {
        let len = (MAX_FRAME as u32 + 1).to_be_bytes();
        let mut r = &len[..];
        let e = read_frame::<Reply, _>(&mut r).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn write_frame_refuses_a_frame_over_the_limit() {
        let mut buf = Vec::new();
        let big = Reply::Line("x".repeat(MAX_FRAME + 1));
        let e = write_frame(&mut buf, &big).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(buf.is_empty());
    }

    #[tokio::test]
    async fn read_frame_truncated_frame_is_an_error() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Reply::Line("hello".into()))
            .await
            .unwrap();
        buf.truncate(buf.len() - 1);
        let mut r = &buf[..];
        let e = read_frame::<Reply, _>(&mut r).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    /// 3 MiB of rows (more than [`MAX_FRAME`]) come back whole, in frames of at most
    /// [`TEXT_CHUNK`] bytes of text, cut at row ends; a row longer than a chunk is cut too.
    #[tokio::test]
    async fn write_rows_streams_text_over_the_frame_limit_in_chunks() {
        let rows: Vec<String> = (0..60_000)
            .map(|i| format!("{i:<10} {}\n", "é".repeat(20)))
            // Odd offsets: the cuts fall inside a two-byte character and must back off.
            .chain(std::iter::once(format!(
                "z{}\n",
                "é".repeat(3 * TEXT_CHUNK / 2)
            )))
            .collect();
        let want: String = rows.concat();
        assert!(want.len() > 3 * MAX_FRAME);
        let mut buf = Vec::new();
        write_rows(&mut buf, rows.clone()).await.unwrap();
        let mut r = &buf[..];
        let mut got = String::new();
        let mut frames = 0;
        while let Some(f) = read_frame::<Reply, _>(&mut r).await.unwrap() {
            let Reply::Line(t) = f else {
                panic!("not a line frame: {f:?}")
            };
            assert!(t.len() <= TEXT_CHUNK, "frame of {} bytes", t.len());
            got.push_str(&t);
            frames += 1;
        }
        assert_eq!(got, want);
        assert!(frames > want.len() / TEXT_CHUNK, "{frames} frames");
        // Cut at row ends, except inside the one row longer than a chunk.
        let mut r = &buf[..];
        let mut ends_mid_row = 0;
        while let Some(Reply::Line(t)) = read_frame::<Reply, _>(&mut r).await.unwrap() {
            if !t.ends_with('\n') {
                ends_mid_row += 1;
            }
        }
        assert!(ends_mid_row <= 3, "{ends_mid_row} frames end inside a row");
    }
}
