//! The [`Node`]: a running TIPC node built from a [`NodeConfig`], and the management views
//! (`node list`, `link list`, `link stat show`, `bearer list`) formatted as iproute2's `tipc`.

use crate::config::{ConfigError, NodeConfig};
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tipc_actors::{LinkInfo, NodeEvent, TransportConfig, TransportNode};
use tipc_transport::link::LinkState;
use tipc_transport::media::udp::{multicast_group, UdpConfig, UdpMedia, UdpRemote};
use tipc_transport::media::EthMedia;
use tipc_transport::{NodeAddr, NodeId};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A UDP bearer could not be enabled (port busy, address not available...).
    #[error("cannot enable UDP bearer on {addr}: {err}")]
    Udp {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        err: io::Error,
    },
    /// An Ethernet bearer could not be enabled (no such interface, no CAP_NET_RAW...).
    #[error("cannot enable Ethernet bearer on {ifname}: {err}")]
    Eth {
        /// The interface.
        ifname: String,
        /// The cause.
        err: io::Error,
    },
    /// The transport refused the bearer.
    #[error("cannot enable bearer: {0}")]
    Bearer(String),
}

/// A running node.
#[derive(Clone)]
pub struct Node {
    transport: TransportNode,
}

impl Node {
    /// Start a node with its bearers. Must run inside an actix System.
    pub fn start(cfg: &NodeConfig) -> Result<Node, NodeError> {
        let (udp, peers) = cfg.validate()?;
        let net_id = cfg.net_id.unwrap_or(4711);
        // Open the media first: the default identity comes from the first bearer (kernel rule).
        let mut udp_media = Vec::new();
        for (i, local) in udp.iter().enumerate() {
            let fam_peers: Vec<SocketAddr> = peers
                .iter()
                .copied()
                .filter(|p| p.is_ipv4() == local.is_ipv4())
                .collect();
            let remote = if fam_peers.is_empty() {
                UdpRemote::Multicast(SocketAddr::new(
                    multicast_group(net_id, local.is_ipv6()),
                    local.port(),
                ))
            } else {
                UdpRemote::Replicast(fam_peers)
            };
            let m = UdpMedia::bind(UdpConfig {
                local: *local,
                remote,
                mtu: None,
                name: format!("udp{i}"),
            })
            .map_err(|err| NodeError::Udp { addr: *local, err })?;
            udp_media.push((format!("udp{i}"), m));
        }
        let mut eth_media = Vec::new();
        for ifname in &cfg.eth {
            let m = EthMedia::open(ifname, None).map_err(|err| NodeError::Eth {
                ifname: ifname.clone(),
                err,
            })?;
            eth_media.push((ifname.clone(), m));
        }
        let id = match &cfg.id {
            Some(s) => NodeId::from_str_id(s).map_err(|_| ConfigError::BadIdentity(s.clone()))?,
            None => default_identity(&udp, &eth_media),
        };
        let mut tc = TransportConfig::new(id);
        tc.net_id = net_id;
        if let Some(t) = cfg.tolerance_ms {
            tc.tolerance = Duration::from_millis(t as u64);
        }
        let transport = TransportNode::new(tc);
        for (name, m) in udp_media {
            transport
                .enable_bearer(m, &name, 50)
                .map_err(|e| NodeError::Bearer(e.to_string()))?;
        }
        for (name, m) in eth_media {
            transport
                .enable_bearer(m, &name, 8191)
                .map_err(|e| NodeError::Bearer(e.to_string()))?;
        }
        Ok(Node { transport })
    }

    /// The transport layer.
    pub fn transport(&self) -> &TransportNode {
        &self.transport
    }

    /// Own address.
    pub fn addr(&self) -> NodeAddr {
        self.transport.addr()
    }

    /// Own identity.
    pub fn id(&self) -> NodeId {
        self.transport.id()
    }

    /// Transport events.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<NodeEvent> {
        self.transport.events()
    }

    /// Tell every peer we are stopping.
    pub async fn shutdown(&self) {
        self.transport.shutdown().await;
    }

    /// `tipc node list`.
    pub async fn node_list(&self) -> String {
        let mut s = String::from("Node Identity                    Hash     State\n");
        for n in self.transport.nodes().await {
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
    /// synch, restarts). Not in the kernel's tool, whose counters are per link.
    pub async fn node_stat(&self) -> String {
        let mut s = String::new();
        for n in self.transport.nodes().await {
            let t = &n.stats;
            let _ = writeln!(
                s,
                "{} {:08x}: failovers:{} tunnel tx:{} rx:{} fragmented:{} reassembled:{} \
                 reasm_errors:{} synchs:{} synch_dropped:{} restarts:{}",
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
                t.restarts
            );
        }
        s
    }

    /// `tipc link list`.
    pub async fn link_list(&self) -> String {
        let mut s = String::from("broadcast-link: up\n");
        for l in self.transport.links().await {
            let up = matches!(l.link.state, LinkState::Established | LinkState::Synching);
            let _ = writeln!(s, "{}: {}", l.link.name, if up { "up" } else { "down" });
        }
        s
    }

    /// `tipc link stat show [LINK]`. Errors if a named link does not exist.
    pub async fn link_stat(&self, name: Option<&str>) -> Result<String, String> {
        let links = self.transport.links().await;
        let mut s = String::new();
        if name.is_none() || name == Some("broadcast-link") {
            s.push_str("Link <broadcast-link>\n  Window:50 packets\n  RX packets:0 fragments:0/0 bundles:0/0\n  TX packets:0 fragments:0/0 bundles:0/0\n  RX naks:0 defs:0 dups:0\n  TX naks:0 acks:0 dups:0\n  Congestion link:0  Send queue max:0 avg:0\n\n");
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
    pub async fn nametable_show(&self) -> String {
        let mut s = format!(
            "{:<10} {:<10} {:<10} {:<8} {:<10} {:<33}\n",
            "Type", "Lower", "Upper", "Scope", "Port", "Node"
        );
        for p in self.transport.nametable().await {
            let node = self
                .transport
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
                p.range.type_, p.range.lower, p.range.upper, scope, p.port, node
            );
        }
        s
    }

    /// `tipc socket list`: each local socket and its bindings.
    pub async fn socket_list(&self) -> String {
        let table = self.transport.nametable().await;
        let own = self.addr();
        let mut s = String::new();
        for port in self.transport.socket_ports() {
            let _ = writeln!(s, "socket {port}");
            for p in table.iter().filter(|p| p.node == own && p.port == port) {
                let _ = writeln!(
                    s,
                    "        bound to {{{},{},{}}}",
                    p.range.type_, p.range.lower, p.range.upper
                );
            }
        }
        s
    }

    /// `tipc bearer list`.
    pub fn bearer_list(&self) -> String {
        let mut s = String::new();
        for b in self.transport.bearers() {
            let _ = writeln!(s, "{}", b.name);
        }
        s
    }
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

/// The kernel's default identity: from the first bearer's address (UDP: the IP bytes; Ethernet:
/// the MAC), zero padded.
fn default_identity(udp: &[SocketAddr], eth: &[(String, EthMedia)]) -> NodeId {
    let mut id = [0u8; 16];
    if let Some(sa) = udp.first() {
        match sa.ip() {
            std::net::IpAddr::V4(ip) => id[..4].copy_from_slice(&ip.octets()),
            std::net::IpAddr::V6(ip) => id.copy_from_slice(&ip.octets()),
        }
    } else if let Some((_, m)) = eth.first() {
        id[..6].copy_from_slice(&m.mac());
    }
    NodeId(id)
}
