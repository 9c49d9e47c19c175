//! The node's side of the control socket: [`bind`] creates it (see [`super::access`]: the
//! path checks, mode 0600 or 0660 with a control group), [`ControlServer::serve`] accepts
//! connections and answers each request, a table from [`super::views`] (streamed in chunks,
//! no size limit) or a streaming command of [`super::dgram`], [`super::conn`] or
//! [`super::group`].
//!
//! Nothing a client sends is trusted: a client whose credentials [`super::access::check_peer`]
//! refuses, a request that does not decode or asks for the impossible (`send rdm --size` over
//! [`MAX_MESSAGE`]), or no request within [`REQUEST_TIMEOUT`] is answered with an error (where
//! there is someone to answer), dropped and counted: `node stat`'s last line, `control
//! dropped: refused:N bad_request:N timed_out:N accept_errors:N`. An accept that fails (out of
//! file descriptors, say) is counted and logged at most once per [`ACCEPT_LOG_EVERY`], and the
//! loop goes on after [`ACCEPT_BACKOFF`]: the node stays manageable.

use super::access::{self, Access};
use super::proto::{read_frame, write_frame, write_rows, BcastMode, Reply, Request, MAX_MESSAGE};
use super::views::Rows;
use super::{conn, dgram, group, views};
use crate::node::Node;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tipc_actors::group::Method;
use tokio::net::{UnixListener, UnixStream};

/// How long a client has to send its request after connecting.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause after a failed accept before the next one.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one log line about failing accepts per this interval.
pub const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);

/// What the control socket dropped, by cause (`node stat`'s `control dropped:` line).
#[derive(Debug, Default)]
pub struct CtlStats {
    /// Clients refused for their credentials.
    pub refused: AtomicU64,
    /// Requests that did not decode, or asked for what the node refuses.
    pub bad_request: AtomicU64,
    /// Connections that sent no request within [`REQUEST_TIMEOUT`].
    pub timed_out: AtomicU64,
    /// Failed accepts.
    pub accept_errors: AtomicU64,
}

impl CtlStats {
    /// The `control dropped:` line.
    pub fn line(&self) -> String {
        format!(
            "control dropped: refused:{} bad_request:{} timed_out:{} accept_errors:{}\n",
            self.refused.load(Ordering::Relaxed),
            self.bad_request.load(Ordering::Relaxed),
            self.timed_out.load(Ordering::Relaxed),
            self.accept_errors.load(Ordering::Relaxed)
        )
    }
}

/// A created control socket, not yet served (dropped unserved, it leaves its socket file,
/// which [`ControlServer::path`] names).
#[derive(Debug)]
pub struct ControlServer {
    listener: std::os::unix::net::UnixListener,
    path: PathBuf,
    access: Access,
}

/// Create the control socket at `path` for `access` (see [`super::access::bind`]). The errors
/// say what is wrong with the path.
pub fn bind(path: &Path, access: Access) -> io::Result<ControlServer> {
    let listener = access::bind(path, &access)?;
    listener.set_nonblocking(true)?;
    Ok(ControlServer {
        listener,
        path: path.to_path_buf(),
        access,
    })
}

/// Serve the control socket at `path` for root and the node's own user: [`bind`], then
/// [`ControlServer::serve`].
pub fn serve(node: Node, path: &Path) -> io::Result<()> {
    bind(path, Access::owner_only())?.serve(node)
}

impl ControlServer {
    /// Where the socket is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accept and answer clients until the node's actix System stops. Must run inside it.
    pub fn serve(self, node: Node) -> io::Result<()> {
        let listener = UnixListener::from_std(self.listener)?;
        let access = self.access;
        let stats = Arc::new(CtlStats::default());
        actix::spawn(async move {
            let mut failing = AcceptErrors::default();
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let node = node.clone();
                        let stats = stats.clone();
                        actix::spawn(async move {
                            let _ = handle(node, stream, access, stats).await;
                        });
                    }
                    Err(e) => {
                        stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                        failing.note(&e);
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
            }
        });
        Ok(())
    }
}

/// Rate-limited logging of failed accepts.
#[derive(Default)]
struct AcceptErrors {
    last_log: Option<tokio::time::Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    fn note(&mut self, e: &io::Error) {
        self.unlogged += 1;
        let now = tokio::time::Instant::now();
        if self.last_log.is_some_and(|t| now < t + ACCEPT_LOG_EVERY) {
            return;
        }
        tracing::warn!(
            "control socket: accept failed: {e} ({} failure(s) since the last report); \
             retrying every {} ms",
            self.unlogged,
            ACCEPT_BACKOFF.as_millis()
        );
        self.last_log = Some(now);
        self.unlogged = 0;
    }
}

fn one_row(s: &str) -> Rows {
    Box::new(std::iter::once(s.to_string()))
}

async fn handle(
    node: Node,
    mut s: UnixStream,
    access: Access,
    stats: Arc<CtlStats>,
) -> io::Result<()> {
    if let Err(why) = access::check_peer(&s, &access) {
        stats.refused.fetch_add(1, Ordering::Relaxed);
        return write_frame(&mut s, &Reply::Done(Err(why))).await;
    }
    let req = match tokio::time::timeout(REQUEST_TIMEOUT, read_frame::<Request, _>(&mut s)).await {
        Err(_) => {
            stats.timed_out.fetch_add(1, Ordering::Relaxed);
            let e = format!("no request within {} s", REQUEST_TIMEOUT.as_secs());
            return write_frame(&mut s, &Reply::Done(Err(e))).await;
        }
        Ok(Ok(Some(req))) => req,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => {
            stats.bad_request.fetch_add(1, Ordering::Relaxed);
            let e = format!("bad request: {e}");
            return write_frame(&mut s, &Reply::Done(Err(e))).await;
        }
    };
    let out: Result<Rows, String> = match req {
        Request::NodeList => Ok(views::node_list_rows(&node).await),
        Request::NodeStat => {
            let rows = views::node_stat_rows(&node).await;
            Ok(Box::new(rows.chain(std::iter::once(stats.line()))))
        }
        Request::NodeSetKey(args) => {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            match tipc_transport::crypto::KeySetting::parse(&args) {
                Ok(k) => node
                    .transport()
                    .set_key(k)
                    .map(|_| -> Rows { Box::new(std::iter::empty()) })
                    .map_err(|e| format!("node set key: {e}")),
                Err(e) => Err(format!("node set key: {e}")),
            }
        }
        Request::NodeFlushKey => {
            node.transport().flush_keys();
            Ok(Box::new(std::iter::empty()))
        }
        Request::LinkList => Ok(views::link_list_rows(&node).await),
        Request::LinkStat(name) => views::link_stat_rows(&node, name.as_deref()).await,
        Request::LinkSetBroadcast(mode) => {
            node.transport().set_bcast_mode(match mode {
                BcastMode::Broadcast => Some(Method::Broadcast),
                BcastMode::Replicast => Some(Method::Replicast),
                BcastMode::Autoselect => None,
            });
            Ok(Box::new(std::iter::empty()))
        }
        Request::LinkGetBroadcast => Ok(one_row(match node.transport().bcast_mode() {
            Some(Method::Broadcast) => "BROADCAST\n",
            Some(Method::Replicast) => "REPLICAST\n",
            None => "AUTOSELECT ratio:10%\n",
        })),
        Request::BearerList => Ok(views::bearer_list_rows(&node)),
        Request::NameTable => Ok(views::nametable_rows(&node).await),
        Request::SocketList => Ok(views::socket_list_rows(&node).await),
        Request::ListenRdm {
            bindings,
            echo,
            count,
        } => return dgram::listen_rdm(node, s, bindings, echo, count).await,
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
                // Checked before anything is allocated: the client is not trusted.
                if n > MAX_MESSAGE {
                    stats.bad_request.fetch_add(1, Ordering::Relaxed);
                    let e = format!(
                        "send: --size {n} exceeds {MAX_MESSAGE} bytes, the largest message"
                    );
                    return write_frame(&mut s, &Reply::Done(Err(e))).await;
                }
                data.resize(n, b'.');
            }
            return dgram::send_rdm(
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
        Request::Subscribe { range, service } => {
            return dgram::subscribe(node, s, range, service).await
        }
        Request::Connect {
            target,
            kind,
            first,
            linger,
            nodelay,
        } => return conn::connect(node, s, target, kind, first, linger, nodelay).await,
        Request::ListenConn {
            kind,
            bindings,
            echo,
            count,
        } => return conn::listen(node, s, kind, bindings, echo, count).await,
        Request::GroupJoin {
            member,
            node_scope,
            events,
            loopback,
            echo,
            count,
            timeout_ms,
        } => {
            let o = group::JoinOpts {
                events,
                loopback,
                echo,
                count,
                timeout_ms,
            };
            return group::join(node, s, member, node_scope, o).await;
        }
        Request::GroupSend(req) => return group::send(node, s, req).await,
    };
    match out {
        Ok(rows) => {
            write_rows(&mut s, rows).await?;
            write_frame(&mut s, &Reply::Done(Ok(()))).await
        }
        Err(e) => write_frame(&mut s, &Reply::Done(Err(e))).await,
    }
}
