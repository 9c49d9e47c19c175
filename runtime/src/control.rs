//! The control socket between `tipc-node` and `tipcctl`: a Unix stream socket carrying
//! length-prefixed (u32, big-endian) rmp-serde frames. The client sends one [`Request`]; the node
//! answers with any number of [`Reply::Line`] frames and one [`Reply::Done`].

use crate::node::Node;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;
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
}

/// A reply frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Reply {
    /// Output text (one or more lines).
    Line(String),
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
        Request::LinkList => Ok(node.link_list().await),
        Request::LinkStat(name) => node.link_stat(name.as_deref()).await,
        Request::BearerList => Ok(node.bearer_list()),
        Request::NameTable => Ok(node.nametable_show().await),
    };
    match out {
        Ok(text) => {
            write_frame(&mut s, &Reply::Line(text)).await?;
            write_frame(&mut s, &Reply::Done(Ok(()))).await
        }
        Err(e) => write_frame(&mut s, &Reply::Done(Err(e))).await,
    }
}

/// Client side: send `req` to the node at `path`, call `on_line` for each output frame.
pub async fn request(
    path: &Path,
    req: &Request,
    mut on_line: impl FnMut(&str),
) -> io::Result<Result<(), String>> {
    let mut s = UnixStream::connect(path).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot reach node at {}: {e} (is tipc-node running with --control?)",
                path.display()
            ),
        )
    })?;
    write_frame(&mut s, req).await?;
    loop {
        match read_frame::<Reply, _>(&mut s).await? {
            Some(Reply::Line(l)) => on_line(&l),
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
