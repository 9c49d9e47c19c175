//! The management views `tipcctl` shows of a [`Node`] (`node list`, `node stat`, `link list`,
//! `link stat show`, `bearer list`, `nametable show`, `socket list`), formatted as iproute2's
//! `tipc` prints them.
//!
//! Each view is a [`Rows`] iterator over a snapshot (one item per line, or per block of lines
//! for a link's statistics), which the server streams in chunks: a view has no size limit
//! (65,534 bindings, hundreds of peers) and is never formatted whole in memory. The `String`
//! forms collect the same rows.

use crate::node::Node;
use std::fmt::Write as _;
use tipc_actors::socket::conn::ConnState;
use tipc_actors::{LinkInfo, SocketKind};
use tipc_transport::link::LinkState;

/// The lines of a view, each ending with `\n` (a link's statistics: one item per link).
pub type Rows = Box<dyn Iterator<Item = String>>;

/// `tipc node list`.
pub async fn node_list(node: &Node) -> String {
    node_list_rows(node).await.collect()
}

/// [`node_list`]'s rows.
pub async fn node_list_rows(node: &Node) -> Rows {
    let nodes = node.transport().nodes().await;
    let head = "Node Identity                    Hash     State\n".to_string();
    Box::new(std::iter::once(head).chain(nodes.into_iter().map(|n| {
        format!(
            "{:<32} {:08x} {}\n",
            n.id.to_id_string(),
            n.addr,
            if n.up { "up" } else { "down" }
        )
    })))
}

/// `node stat`: one line per peer node with its node-level counters (§4.12 failover and
/// synch, restarts, messages a failed link dropped that could not be returned, delivered
/// messages of a user no input queue takes), then one line with what the receive dispatch
/// dropped, by cause, and one with what group member sockets dropped (`group dropped:
/// non_member:N malformed:N stale:N deferred_overflow:N rcvbuf:N early:N after_leave:N`,
/// members that left included). Not in the kernel's tool, whose counters are per link.
///
/// Then one line with what the node dropped from the network ([`tipc_actors::NetDrops`]):
/// `network dropped: malformed:N misrouted:N unknown_peer:N wrong_network:N
/// duplicate_address:N spoofed_source:N peer_limit:N stranger_limited:N foreign_names:N`.
pub async fn node_stat(node: &Node) -> String {
    node_stat_rows(node).await.collect()
}

/// [`node_stat`]'s rows.
pub async fn node_stat_rows(node: &Node) -> Rows {
    let nodes = node.transport().nodes().await;
    let d = node.transport().rcv_stats();
    let g = node.transport().group_drops();
    let peers = nodes.into_iter().map(|n| {
        let t = &n.stats;
        format!(
            "{} {:08x}: failovers:{} tunnel tx:{} rx:{} fragmented:{} reassembled:{} \
             reasm_errors:{} synchs:{} synch_dropped:{} restarts:{} unreturned:{} bad_user:{} \
             duplicates:{} spoofed_source:{} stranger_limited:{}\n",
            n.id.to_id_string(),
            n.addr,
            t.failovers,
            t.tunnel_tx,
            t.tunnel_rx,
            t.tunnel_fragmented,
            t.tunnel_reassembled,
            t.tunnel_reasm_errors,
            t.synchs,
            t.synch_dropped,
            t.restarts,
            t.unreturned,
            t.bad_user,
            t.duplicates,
            t.spoofed_source,
            t.stranger_suppressed
        )
    });
    let n = node.transport().net_drops().await;
    let net = format!(
        "network dropped: malformed:{} misrouted:{} unknown_peer:{} wrong_network:{} \
         duplicate_address:{} spoofed_source:{} peer_limit:{} stranger_limited:{} \
         foreign_names:{}\n",
        n.malformed,
        n.misrouted,
        n.unknown_peer,
        n.wrong_network,
        n.duplicate_address,
        n.spoofed_source,
        n.peer_limit,
        n.stranger_limited,
        n.foreign_names
    );
    let dispatch = format!(
        "dispatch dropped: malformed:{} not_for_sockets:{} not_returnable:{} sender_gone:{}\n",
        d.malformed, d.not_for_sockets, d.not_returnable, d.sender_gone
    );
    let group = format!(
        "group dropped: non_member:{} malformed:{} stale:{} deferred_overflow:{} rcvbuf:{} early:{} after_leave:{}\n",
        g.non_member, g.malformed, g.stale, g.deferred_overflow, g.rcvbuf, g.early, g.after_leave
    );
    Box::new(peers.chain([net, dispatch, group, crypto_line(node)]))
}

/// `node stat`'s encryption line: own TX slots (pending/active/passive), envelopes sealed
/// and opened, and every reason a received frame was dropped.
fn crypto_line(node: &Node) -> String {
    use tipc_transport::crypto::CryptoDrop as D;
    let c = node.transport().crypto_info();
    let s = &c.stats;
    format!(
        "crypto: {} tx_keys:{}/{}/{}{} sealed:{} opened:{} clear_rx:{} dropped: \
         decrypt_failed:{} replayed:{} too_old:{} no_key:{} plaintext:{} unknown_peer:{} \
         bad_header:{} bad_inner:{} inconsistent:{} tx_failed:{} keys sent:{} received:{} \
         refused:{}\n",
        if c.sealing { "on" } else { "off" },
        c.tx.pending,
        c.tx.active,
        c.tx.passive,
        if c.master { " master" } else { "" },
        s.tx_ok,
        s.rx_ok,
        s.rx_clear,
        s.dropped(D::DecryptFailed),
        s.dropped(D::Replayed),
        s.dropped(D::TooOld),
        s.dropped(D::NoKey),
        s.dropped(D::PlaintextRefused),
        s.dropped(D::UnknownPeer),
        s.dropped(D::BadHeader),
        s.dropped(D::BadInner),
        s.dropped(D::Inconsistent),
        s.dropped(D::NoTxKey) + s.dropped(D::KeyRevoked) + s.dropped(D::BadOutgoing),
        s.keys_sent,
        s.keys_received,
        s.keys_refused
    )
}

/// `tipc link list`.
pub async fn link_list(node: &Node) -> String {
    link_list_rows(node).await.collect()
}

/// [`link_list`]'s rows.
pub async fn link_list_rows(node: &Node) -> Rows {
    let links = node.transport().links().await;
    let head = "broadcast-link: up\n".to_string();
    Box::new(std::iter::once(head).chain(links.into_iter().map(|l| {
        let up = matches!(l.link.state, LinkState::Established | LinkState::Synching);
        format!("{}: {}\n", l.link.name, if up { "up" } else { "down" })
    })))
}

/// `tipc link stat show [LINK]`. Errors if a named link does not exist.
pub async fn link_stat(node: &Node, name: Option<&str>) -> Result<String, String> {
    Ok(link_stat_rows(node, name).await?.collect())
}

/// [`link_stat`]'s rows: one item per link (a block of lines and an empty line).
pub async fn link_stat_rows(node: &Node, name: Option<&str>) -> Result<Rows, String> {
    let links = node.transport().links().await;
    let mut bcast = None;
    if name.is_none() || name == Some("broadcast-link") {
        // Our send side; the receive side is per peer (`node stat`).
        let (b, _) = node.transport().bcast_stats();
        bcast = Some(format!(
            "Link <broadcast-link>\n  Window:50 packets\n  RX packets:0 fragments:0/0 bundles:0/0\n  \
             TX packets:{} fragments:{}/{} bundles:{}/{}\n  RX naks:{} defs:0 dups:0\n  \
             TX naks:0 acks:0 dups:0\n  Congestion link:{}  Send queue max:{} avg:0\n  \
             Queued now:{} retransmitted:{}\n\n",
            b.tx_packets,
            b.tx_fragments,
            b.tx_fragmented,
            b.tx_bundles,
            b.tx_bundled,
            b.nacks,
            b.congested,
            b.max_queue,
            b.queued,
            b.retransmitted
        ));
    }
    let want = name.map(str::to_string);
    let found = bcast.is_some() || links.iter().any(|l| want.as_ref() == Some(&l.link.name));
    if !found {
        return Err(format!("link not found: {}", name.unwrap_or_default()));
    }
    let links = links
        .into_iter()
        .filter(move |l| want.as_ref().is_none_or(|n| *n == l.link.name))
        .map(|l| {
            let mut s = String::new();
            format_link_stat(&mut s, &l);
            s
        });
    Ok(Box::new(bcast.into_iter().chain(links)))
}

/// `tipc nametable show`: every binding, with the publishing node's identity.
pub async fn nametable_show(node: &Node) -> String {
    nametable_rows(node).await.collect()
}

/// [`nametable_show`]'s rows.
pub async fn nametable_rows(node: &Node) -> Rows {
    let table = node.transport().nametable().await;
    let t = node.transport().clone();
    let head = format!(
        "{:<10} {:<10} {:<10} {:<8} {:<10} {:<33}\n",
        "Type", "Lower", "Upper", "Scope", "Port", "Node"
    );
    Box::new(std::iter::once(head).chain(table.into_iter().map(move |p| {
        let owner = t
            .node_id(p.node)
            .map(|id| id.to_id_string())
            .unwrap_or_else(|| format!("{:x}", p.node));
        let scope = match p.scope {
            tipc_actors::addr::Scope::Cluster => "cluster",
            tipc_actors::addr::Scope::Node => "node",
        };
        format!(
            "{:<10} {:<10} {:<10} {:<8} {:<10} {}\n",
            p.range.type_(),
            p.range.lower(),
            p.range.upper(),
            scope,
            p.port,
            owner
        )
    })))
}

/// `tipc socket list`: every local socket, as the kernel's tool prints them (one block per
/// socket; lines stable):
///
/// * `socket PORT`;
/// * `        connected to NODE:PORT` (NODE in hex, as the kernel's tool), followed by
///   ` via {TYPE,INST}` when the connection was requested by that service address, for a
///   connected stream or seqpacket socket;
/// * otherwise `        bound to {TYPE,LOWER,UPPER}` per binding (datagram sockets, group
///   members, stream and seqpacket listeners).
pub async fn socket_list(node: &Node) -> String {
    socket_list_rows(node).await.collect()
}

/// [`socket_list`]'s rows (one item per socket).
pub async fn socket_list_rows(node: &Node) -> Rows {
    let table = node.transport().nametable().await;
    let own = node.addr();
    let mut bound: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    for p in table.iter().filter(|p| p.node == own) {
        bound.entry(p.port).or_default().push(format!(
            "        bound to {{{},{},{}}}\n",
            p.range.type_(),
            p.range.lower(),
            p.range.upper()
        ));
    }
    let sockets = node.transport().sockets();
    Box::new(sockets.into_iter().map(move |sk| {
        let mut s = format!("socket {}\n", sk.port);
        match sk.kind {
            SocketKind::Conn {
                state: ConnState::Established,
                peer: Some(peer),
                via,
            } => {
                let _ = write!(s, "        connected to {:x}:{}", peer.node, peer.port);
                if let Some(v) = via {
                    let _ = write!(s, " via {{{},{}}}", v.type_, v.instance);
                }
                s.push('\n');
            }
            _ => {
                for l in bound.get(&sk.port).into_iter().flatten() {
                    s.push_str(l);
                }
            }
        }
        s
    }))
}

/// `tipc bearer list`.
pub fn bearer_list(node: &Node) -> String {
    bearer_list_rows(node).collect()
}

/// [`bearer_list`]'s rows.
pub fn bearer_list_rows(node: &Node) -> Rows {
    let bearers = node.transport().bearers();
    Box::new(bearers.into_iter().map(|b| format!("{}\n", b.name)))
}

fn format_link_stat(s: &mut String, l: &LinkInfo) {
    let k = &l.link;
    let st = &k.stats;
    let state = match k.state {
        LinkState::Established | LinkState::Synching => "ACTIVE",
        _ => "DEFUNCT",
    };
    let _ = writeln!(s, "Link <{}>", k.name);
    let _ = writeln!(
        s,
        "  {state}  MTU:{}  Priority:{}  Tolerance:{} ms  Window:{} packets",
        k.mtu, k.priority, k.tolerance_ms, k.window
    );
    let _ = writeln!(
        s,
        "  RX packets:{} fragments:{}/{} bundles:{}/{}",
        st.rx_packets, st.rx_fragments, st.rx_fragmented, st.rx_bundles, st.rx_bundled
    );
    let _ = writeln!(
        s,
        "  TX packets:{} fragments:{}/{} bundles:{}/{}",
        st.tx_packets, st.tx_fragments, st.tx_fragmented, st.tx_bundles, st.tx_bundled
    );
    let _ = writeln!(
        s,
        "  RX states:{} probes:{} naks:{} defs:{} dups:{}",
        st.rx_states, st.rx_probes, st.rx_nacks, st.deferred, st.duplicates
    );
    let _ = writeln!(
        s,
        "  TX states:{} probes:{} naks:{} acks:{} retrans:{}",
        st.tx_states, st.tx_probes, st.tx_nacks, st.tx_acks, st.retransmitted
    );
    let _ = writeln!(
        s,
        "  Congestion link:{}  Send queue max:{} avg:{}",
        st.link_congs,
        st.max_queue,
        k.transmq_len + k.backlog_len
    );
    // Not in the kernel's output: packets the peer's gap ACK blocks reported held.
    let _ = writeln!(s, "  Gap acked:{}", st.gap_acked);
    s.push('\n');
}
