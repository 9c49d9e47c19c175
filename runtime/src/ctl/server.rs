//! The node's side of the control socket: [`serve`] accepts connections and answers each
//! request, a table from [`super::views`] or a streaming command of [`super::dgram`] or
//! [`super::conn`].

use super::proto::{read_frame, write_frame, BcastMode, Reply, Request};
use super::{conn, dgram, group, views};
use crate::node::Node;
use std::io;
use std::path::Path;
use tipc_actors::group::Method;
use tokio::net::{UnixListener, UnixStream};

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
        Request::NodeList => Ok(views::node_list(&node).await),
        Request::NodeStat => Ok(views::node_stat(&node).await),
        Request::LinkList => Ok(views::link_list(&node).await),
        Request::LinkStat(name) => views::link_stat(&node, name.as_deref()).await,
        Request::LinkSetBroadcast(mode) => {
            node.transport().set_bcast_mode(match mode {
                BcastMode::Broadcast => Some(Method::Broadcast),
                BcastMode::Replicast => Some(Method::Replicast),
                BcastMode::Autoselect => None,
            });
            Ok(String::new())
        }
        Request::LinkGetBroadcast => Ok(match node.transport().bcast_mode() {
            Some(Method::Broadcast) => "BROADCAST\n".to_string(),
            Some(Method::Replicast) => "REPLICAST\n".to_string(),
            None => "AUTOSELECT ratio:10%\n".to_string(),
        }),
        Request::BearerList => Ok(views::bearer_list(&node)),
        Request::NameTable => Ok(views::nametable_show(&node).await),
        Request::SocketList => Ok(views::socket_list(&node).await),
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
        Ok(text) => {
            write_frame(&mut s, &Reply::Line(text)).await?;
            write_frame(&mut s, &Reply::Done(Ok(()))).await
        }
        Err(e) => write_frame(&mut s, &Reply::Done(Err(e))).await,
    }
}
