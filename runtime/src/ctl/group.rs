//! The group commands of `tipcctl` (`group join`, `group send`), run inside the node and
//! streamed back over the control socket as text lines.
//!
//! Output lines (stable; scripts and tests depend on them):
//!
//! * `JOINED group=T member=T:I sock=sock:0xNODE:PORT` once `group join` is a member;
//! * `RECV from=sock:0xNODE:PORT member=T:I mode=bcast|mcast|ucast len=N data=TEXT` per
//!   message (the mode as far as the wire tells: an anycast and a unicast are both GRP_UCAST,
//!   printed `ucast`; TEXT as for `listen rdm`);
//! * `MEMBER_UP member=T:I sock=sock:0xNODE:PORT` and `MEMBER_DOWN member=T:I
//!   sock=sock:0xNODE:PORT` per member event (`--events`);
//! * `SENT count=N` once `group send` sent everything.
//!
//! `group send` waits at most [`WAIT_MEMBERS_LIMIT`] for `--wait-members`, reads and drops
//! what the other members send it (so that it never holds their windows closed), and leaves
//! only once the links to its members have delivered everything it sent (at most
//! [`DRAIN_LIMIT`]), or those members are gone.

use super::fmt::{sock_str, text};
use super::proto::{client_gone, write_frame, GroupAction, GroupSendReq, Reply};
use crate::node::Node;
use std::io;
use std::time::Duration;
use tipc_actors::addr::{Scope, ServiceAddr, SocketAddr};
use tipc_actors::group::GroupDest;
use tipc_actors::sock::group::{GroupMember, GroupRecv, GroupSpec};
use tokio::net::UnixStream;

/// How long `group send --wait-members N` waits for the members.
pub const WAIT_MEMBERS_LIMIT: Duration = Duration::from_secs(60);
/// How long `group send` waits for its links to deliver what it sent before it leaves.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// `group join`'s options.
#[derive(Debug, Clone, Copy)]
pub struct JoinOpts {
    /// Member events in the output.
    pub events: bool,
    /// Loopback.
    pub loopback: bool,
    /// Answer each message with a unicast `echo:TEXT`.
    pub echo: bool,
    /// Stop after this many messages.
    pub count: Option<u64>,
    /// Stop after this many ms (an error if `count` messages did not come by then).
    pub timeout_ms: Option<u64>,
}

fn scope_of(node_scope: bool) -> Scope {
    if node_scope {
        Scope::Node
    } else {
        Scope::Cluster
    }
}

fn member_str(m: ServiceAddr) -> String {
    format!("{}:{}", m.type_, m.instance)
}

/// The line for one received message or event.
fn recv_line(r: &GroupRecv) -> String {
    match r {
        GroupRecv::Message {
            from,
            member,
            mode,
            data,
        } => format!(
            "RECV from={} member={} mode={} len={} data={}\n",
            sock_str(*from),
            member_str(*member),
            mode.as_str(),
            data.len(),
            text(data)
        ),
        GroupRecv::MemberUp { member, sock } => format!(
            "MEMBER_UP member={} sock={}\n",
            member_str(*member),
            sock_str(*sock)
        ),
        GroupRecv::MemberDown { member, sock } => format!(
            "MEMBER_DOWN member={} sock={}\n",
            member_str(*member),
            sock_str(*sock)
        ),
    }
}

async fn join_member(node: &Node, spec: GroupSpec) -> Result<GroupMember, String> {
    node.transport()
        .join(spec)
        .await
        .map_err(|e| format!("join {}:{}: {e}", spec.type_, spec.instance))
}

/// `group join T:I ...`.
pub(super) async fn join(
    node: Node,
    s: UnixStream,
    member: (u32, u32),
    node_scope: bool,
    o: JoinOpts,
) -> io::Result<()> {
    let (mut rd, mut wr) = s.into_split();
    let mut spec = GroupSpec::new(member.0, member.1).with_scope(scope_of(node_scope));
    spec.events = o.events;
    spec.loopback = o.loopback;
    let m = match join_member(&node, spec).await {
        Ok(m) => m,
        Err(e) => return write_frame(&mut wr, &Reply::Done(Err(e))).await,
    };
    write_frame(
        &mut wr,
        &Reply::Line(format!(
            "JOINED group={} member={} sock={}\n",
            spec.type_,
            member_str(m.member()),
            sock_str(m.addr())
        )),
    )
    .await?;
    let deadline = o
        .timeout_ms
        .map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms));
    let mut got = 0u64;
    let result = loop {
        if o.count.is_some_and(|c| got >= c) {
            break Ok(());
        }
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let r = tokio::select! {
            r = m.recv() => r,
            _ = timer => break match o.count {
                Some(c) => Err(format!("timeout: {got} of {c} messages")),
                None => Ok(()),
            },
            _ = client_gone(&mut rd) => return Ok(()),
        };
        let Some(r) = r else {
            break Err("the member was closed".to_string());
        };
        if write_frame(&mut wr, &Reply::Line(recv_line(&r)))
            .await
            .is_err()
        {
            return Ok(());
        }
        if let GroupRecv::Message { from, data, .. } = r {
            got += 1;
            if o.echo {
                let mut reply = b"echo:".to_vec();
                reply.extend_from_slice(&data);
                if let Err(e) = m.unicast(from, reply).await {
                    break Err(format!("echo to {}: {e}", sock_str(from)));
                }
            }
        }
    };
    m.leave();
    write_frame(&mut wr, &Reply::Done(result)).await
}

/// `group send T:I ...`.
pub(super) async fn send(node: Node, s: UnixStream, req: GroupSendReq) -> io::Result<()> {
    let GroupSendReq {
        member,
        node_scope,
        wait_members,
        count,
        seq,
        actions,
    } = req;
    let (_rd, mut wr) = s.into_split();
    let spec = GroupSpec::new(member.0, member.1).with_scope(scope_of(node_scope));
    let m = match join_member(&node, spec).await {
        Ok(m) => m,
        Err(e) => return write_frame(&mut wr, &Reply::Done(Err(e))).await,
    };
    let waited = tokio::time::timeout(WAIT_MEMBERS_LIMIT, async {
        while m.members_up() < wait_members {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    if waited.is_err() {
        let e = format!(
            "{} of {wait_members} members up after {} s",
            m.members_up(),
            WAIT_MEMBERS_LIMIT.as_secs()
        );
        return write_frame(&mut wr, &Reply::Done(Err(e))).await;
    }
    let mut n = 0u64;
    let sending = async {
        for _ in 0..count {
            for a in &actions {
                n += 1;
                let (dest, data) = match a {
                    GroupAction::Bcast(d) => (GroupDest::Broadcast, d),
                    GroupAction::Mcast(i, d) => (GroupDest::Multicast(*i), d),
                    GroupAction::Anycast(i, d) => (GroupDest::Anycast(*i), d),
                    GroupAction::Ucast(node, port, d) => (
                        GroupDest::Member(SocketAddr {
                            node: *node,
                            port: *port,
                        }),
                        d,
                    ),
                };
                let payload = if seq {
                    format!("{}-{n:06}", String::from_utf8_lossy(data)).into_bytes()
                } else {
                    data.clone()
                };
                if let Err(e) = m.send(dest, payload.into()).await {
                    return Err(format!("message {n}: {e}"));
                }
            }
        }
        Ok(())
    };
    // What the others send to this member is read and dropped, so that it never holds
    // their windows closed.
    let sent = tokio::select! {
        r = sending => r,
        _ = discard(&m) => Err("the member was closed".to_string()),
    };
    if let Err(e) = sent {
        return write_frame(&mut wr, &Reply::Done(Err(e))).await;
    }
    write_frame(&mut wr, &Reply::Line(format!("SENT count={n}\n"))).await?;
    let nodes: Vec<_> = m.members().iter().map(|i| i.addr.node).collect();
    let drained = tokio::select! {
        d = node.transport().wait_delivered(&nodes, DRAIN_LIMIT) => d,
        _ = discard(&m) => false,
    };
    m.leave();
    let r = if drained {
        Ok(())
    } else {
        Err(format!(
            "links still delivering after {} s",
            DRAIN_LIMIT.as_secs()
        ))
    };
    write_frame(&mut wr, &Reply::Done(r)).await
}

/// Read and drop whatever comes to `m`, until it closes.
async fn discard(m: &GroupMember) {
    while m.recv().await.is_some() {}
}
