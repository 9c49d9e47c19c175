//! The [`Node`]: a running TIPC node built from a [`NodeConfig`]: its bearers (UDP, Ethernet)
//! and identity, over the transport ([`TransportNode`]). What `tipcctl` shows of it is
//! formatted in [`crate::ctl::views`].

use crate::config::{ConfigError, NodeConfig};
use crate::service::server::{Binding, Service, ServiceHandle, StartError};
use crate::service::{Clients, ServiceRef, Target, Watch, WatchError};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tipc_actors::addr::{ServiceAddr, ServiceRange, SocketAddr as TipcSocketAddr};
use tipc_actors::{NodeEvent, TransportConfig, TransportNode};
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
    /// A configured key was refused.
    #[error("cannot set key: {0}")]
    Key(String),
    /// The transport refused the bearer.
    #[error("cannot enable bearer: {0}")]
    Bearer(String),
}

/// A running node: the transport, and the service layer's client side.
#[derive(Clone)]
pub struct Node {
    transport: TransportNode,
    clients: Arc<Clients>,
}

impl Node {
    /// Start a node with its bearers. Must run inside an actix System.
    pub fn start(cfg: &NodeConfig) -> Result<Node, NodeError> {
        let (udp, peers) = cfg.validate()?;
        // Keys are read before any bearer opens, and set before the first one is enabled:
        // the first discovery message is already sealed.
        let keys = cfg.key_settings()?;
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
        if let Some(m) = cfg.max_peers {
            tc.max_peers = m;
        }
        let transport = TransportNode::new(tc);
        for k in keys {
            transport
                .set_key(k)
                .map_err(|e| NodeError::Key(e.to_string()))?;
        }
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
        Ok(Node::from_transport(transport))
    }

    /// A node named `id` with a UDP bearer on `127.0.0.1:port`, discovering the nodes on the
    /// loopback `peers` ports (examples, tests, a cluster on one host). Inside an actix System.
    pub fn loopback(id: &str, port: u16, peers: &[u16]) -> Result<Node, NodeError> {
        Node::start(&NodeConfig {
            id: Some(id.to_string()),
            udp: vec![format!("127.0.0.1:{port}")],
            udp_peer: peers.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
            ..Default::default()
        })
    }

    /// Wait until `n` peer nodes are up; false if not within `timeout`.
    pub async fn wait_peers(&self, n: usize, timeout: Duration) -> bool {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let up = self.transport.nodes().await.iter().filter(|p| p.up).count();
            if up >= n {
                return true;
            }
            if tokio::time::Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Wait until `n` bindings overlapping `range` are known here (this node's or others'
    /// bindings, as the binding table has them); false if not within `timeout`.
    pub async fn wait_bound(&self, range: ServiceRange, n: usize, timeout: Duration) -> bool {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let have = self
                .transport
                .nametable()
                .await
                .iter()
                .filter(|p| {
                    p.range.type_() == range.type_()
                        && p.range.lower() <= range.upper()
                        && range.lower() <= p.range.upper()
                })
                .count();
            if have >= n {
                return true;
            }
            if tokio::time::Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A node over a transport built by hand (tests, embedding). Must run inside an actix
    /// System.
    pub fn from_transport(transport: TransportNode) -> Node {
        let clients = Clients::start(&transport);
        Node { transport, clients }
    }

    /// Start `svc` at the binding its `#[tipc_service]` names.
    pub async fn serve<S: Service>(&self, svc: S) -> Result<ServiceHandle<S>, StartError> {
        self.serve_at(svc, S::binding()).await
    }

    /// Start `svc` at another binding (a partition's range, say).
    pub async fn serve_at<S: Service>(
        &self,
        svc: S,
        binding: Binding,
    ) -> Result<ServiceHandle<S>, StartError> {
        ServiceHandle::start(svc, binding, &self.transport, self.clients.clone()).await
    }

    /// A reference to service `{type_, instance}`: anycast, round robin among its bindings.
    pub fn service(&self, type_: u32, instance: u32) -> ServiceRef {
        ServiceRef::new(
            self.clients.clone(),
            Target::Service(ServiceAddr { type_, instance }),
        )
    }

    /// A reference to every socket bound in `range` (multicast; tell only).
    pub fn services(&self, range: ServiceRange) -> ServiceRef {
        ServiceRef::new(self.clients.clone(), Target::Range(range))
    }

    /// A reference to one socket (a pinned service instance).
    pub fn socket_ref(&self, addr: TipcSocketAddr) -> ServiceRef {
        ServiceRef::new(self.clients.clone(), Target::Socket(addr))
    }

    /// Events for the bindings of `range` as they come and go, starting with those already
    /// there (TIPC's topology service).
    pub async fn watch(&self, range: ServiceRange) -> Result<Watch, WatchError> {
        Watch::start(&self.transport, range).await
    }

    /// The client side (counters, pending asks).
    pub fn clients(&self) -> &Arc<Clients> {
        &self.clients
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
}

/// `n` distinct UDP ports free on 127.0.0.1 now (for [`Node::loopback`] clusters; another
/// program may take one before it is bound).
pub fn free_loopback_ports(n: usize) -> io::Result<Vec<u16>> {
    let socks = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()?;
    socks
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()))
        .collect()
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
