//! The management views `tipcctl` shows of a [`Node`] (`node list`, `node stat`, `link list`,
//! `link stat show`, `bearer list`, `nametable show`, `socket list`), formatted as iproute2's
//! `tipc` prints them.

use crate::node::Node;
use std::fmt::Write as _;
use tipc_actors::LinkInfo;
use tipc_transport::link::LinkState;

/// `tipc node list`.
pub async fn node_list(node: &Node) -> String {
    let mut s = String::from("Node Identity                    Hash     State\n");
    for n in node.transport().nodes().await {
        let _ = writeln!(
            s,
            "{:<32} {:08x} {}",
            n.id.to_id_string(),
            n.addr,
            if n.up { "up" } else { "down" }
        );
    }
    s
}

/// `node stat`: one line per peer node with its node-level counters (§4.12 failover and
/// synch, restarts, messages a failed link dropped that could not be returned, delivered
/// messages of a user no input queue takes), then one line with what the receive dispatch
/// dropped, by cause, and one with what group member sockets dropped (`group dropped:
/// non_member:N malformed:N stale:N deferred_overflow:N rcvbuf:N early:N after_leave:N`,
/// members that left included). Not in the kernel's tool, whose counters are per link.
pub async fn node_stat(node: &Node) -> String {
    let mut s = String::new();
    for n in node.transport().nodes().await {
        let t = &n.stats;
        let _ = writeln!(
            s,
            "{} {:08x}: failovers:{} tunnel tx:{} rx:{} fragmented:{} reassembled:{} \
             reasm_errors:{} synchs:{} synch_dropped:{} restarts:{} unreturned:{} bad_user:{}",
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
            t.bad_user
        );
    }
    let d = node.transport().rcv_stats();
    let _ = writeln!(
        s,
        "dispatch dropped: malformed:{} not_for_sockets:{} not_returnable:{} sender_gone:{}",
        d.malformed, d.not_for_sockets, d.not_returnable, d.sender_gone
    );
    let g = node.transport().group_drops();
    let _ = writeln!(
        s,
        "group dropped: non_member:{} malformed:{} stale:{} deferred_overflow:{} rcvbuf:{} early:{} after_leave:{}",
        g.non_member, g.malformed, g.stale, g.deferred_overflow, g.rcvbuf, g.early, g.after_leave
    );
    s
}

/// `tipc link list`.
pub async fn link_list(node: &Node) -> String {
    let mut s = String::from("broadcast-link: up\n");
    for l in node.transport().links().await {
        let up = matches!(l.link.state, LinkState::Established | LinkState::Synching);
        let _ = writeln!(s, "{}: {}", l.link.name, if up { "up" } else { "down" });
    }
    s
}

/// `tipc link stat show [LINK]`. Errors if a named link does not exist.
pub async fn link_stat(node: &Node, name: Option<&str>) -> Result<String, String> {
    let links = node.transport().links().await;
    let mut s = String::new();
    if name.is_none() || name == Some("broadcast-link") {
        // Our send side; the receive side is per peer (`node stat`).
        let (b, _) = node.transport().bcast_stats();
        let _ = write!(
            s,
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
        );
    }
    let mut found = name.is_none() || name == Some("broadcast-link");
    for l in &links {
        if name.is_some_and(|n| n != l.link.name) {
            continue;
        }
        found = true;
        format_link_stat(&mut s, l);
    }
    if !found {
        return Err(format!("link not found: {}", name.unwrap_or_default()));
    }
    Ok(s)
}

/// `tipc nametable show`: every binding, with the publishing node's identity.
pub async fn nametable_show(node: &Node) -> String {
    let mut s = format!(
        "{:<10} {:<10} {:<10} {:<8} {:<10} {:<33}\n",
        "Type", "Lower", "Upper", "Scope", "Port", "Node"
    );
    for p in node.transport().nametable().await {
        let owner = node
            .transport()
            .node_id(p.node)
            .map(|id| id.to_id_string())
            .unwrap_or_else(|| format!("{:x}", p.node));
        let scope = match p.scope {
            tipc_actors::addr::Scope::Cluster => "cluster",
            tipc_actors::addr::Scope::Node => "node",
        };
        let _ = writeln!(
            s,
            "{:<10} {:<10} {:<10} {:<8} {:<10} {}",
            p.range.type_(),
            p.range.lower(),
            p.range.upper(),
            scope,
            p.port,
            owner
        );
    }
    s
}

/// `tipc socket list`: each local socket and its bindings.
pub async fn socket_list(node: &Node) -> String {
    let table = node.transport().nametable().await;
    let own = node.addr();
    let mut s = String::new();
    for port in node.transport().socket_ports() {
        let _ = writeln!(s, "socket {port}");
        for p in table.iter().filter(|p| p.node == own && p.port == port) {
            let _ = writeln!(
                s,
                "        bound to {{{},{},{}}}",
                p.range.type_(),
                p.range.lower(),
                p.range.upper()
            );
        }
    }
    s
}

/// `tipc bearer list`.
pub fn bearer_list(node: &Node) -> String {
    let mut s = String::new();
    for b in node.transport().bearers() {
        let _ = writeln!(s, "{}", b.name);
    }
    s
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
