//! Node configuration: command-line flags of `tipc-node` and the same settings in TOML.
//!
//! ```toml
//! id = "node1"            # node identity, 1..16 bytes (default: from the first bearer)
//! net_id = 4711           # cluster id, 1..9999
//! udp = ["127.0.0.1:6118"]          # UDP bearers, IP[:PORT]
//! udp_peer = ["127.0.0.1:6119"]     # unicast discovery peers (replicast); none = multicast
//! eth = ["eth0"]                    # Ethernet bearers
//! control = "/run/tipc/node.sock"  # control socket for tipcctl (mode 0600)
//! control_group = "tipc"            # members of this group may use it too (mode 0660)
//! tolerance_ms = 1500
//! max_peers = 4096                  # peer nodes kept at most (discovery from more is refused)
//! key_file = "/etc/tipc/cluster.key"         # cluster key (`tipc node set key KEY`)
//! master_key_file = "/etc/tipc/master.key"   # master key: session keys made and exchanged
//! rekeying_minutes = 1440                    # 0: no automatic rekeying
//! node_keys = [{ node = "node2", key_file = "/etc/tipc/node2.key" }]  # per-node keys
//! ```
//!
//! A key file holds one key as iproute2's `tipc node set key` takes it: `0x` and hex digits,
//! or text (20, 28 or 36 bytes: an AES-128, -192 or -256 key and a 4-byte salt); surrounding
//! white space is ignored. A key file readable by other users is refused.

use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use tipc_transport::crypto::{parse_node_id, Key, KeySetting, KeyTarget, Rekeying};
use tipc_transport::media::udp::DEFAULT_PORT;
use tipc_transport::MAX_BEARERS;

/// Node settings.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Node identity (text, 1..=16 bytes).
    pub id: Option<String>,
    /// Network id (default 4711).
    pub net_id: Option<u32>,
    /// UDP bearers, `IP[:PORT]`.
    #[serde(default)]
    pub udp: Vec<String>,
    /// UDP unicast discovery peers, `IP[:PORT]`.
    #[serde(default)]
    pub udp_peer: Vec<String>,
    /// Ethernet bearers (interface names).
    #[serde(default)]
    pub eth: Vec<String>,
    /// Control socket path.
    pub control: Option<PathBuf>,
    /// A group (name or gid) whose members may use the control socket too (mode 0660).
    pub control_group: Option<String>,
    /// Link tolerance in ms (50..=30000).
    pub tolerance_ms: Option<u32>,
    /// Most peer nodes kept, up or not (default 4096): discovery messages from further new
    /// nodes are refused and counted.
    pub max_peers: Option<usize>,
    /// Cluster key file (`tipc node set key KEY`).
    pub key_file: Option<PathBuf>,
    /// Master key file (`tipc node set key KEY master`).
    pub master_key_file: Option<PathBuf>,
    /// Per-node keys (`tipc node set key KEY nodeid ID`): this node's own TX key when `node`
    /// is its identity, otherwise the key a peer sends with.
    #[serde(default)]
    pub node_keys: Vec<NodeKey>,
    /// Automatic rekeying interval in minutes, 0 to turn it off (default: a day).
    pub rekeying_minutes: Option<u32>,
}

/// A per-node key of the configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeKey {
    /// The node identity, as `tipc ... nodeid ID` takes it.
    pub node: String,
    /// The key file.
    pub key_file: PathBuf,
}

/// A configuration error.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read config file {0}: {1}")]
    Read(String, String),
    /// TOML syntax or unknown key.
    #[error("invalid config file {0}: {1}")]
    Parse(String, String),
    /// A bad `IP[:PORT]`.
    #[error("invalid UDP address '{0}': expected IP[:PORT], e.g. 127.0.0.1:6118 or [::1]:6118")]
    BadUdpAddr(String),
    /// Net id out of range.
    #[error("network id {0} out of range 1..9999")]
    BadNetId(u32),
    /// Tolerance out of range.
    #[error("link tolerance {0} ms out of range 50..30000")]
    BadTolerance(u32),
    /// A peer limit of 0.
    #[error("max peers must be at least 1")]
    BadMaxPeers,
    /// Identity too long or empty.
    #[error("node identity '{0}' must be 1 to 16 bytes")]
    BadIdentity(String),
    /// No bearer.
    #[error("no bearer configured: give --udp IP[:PORT] or --eth IFNAME")]
    NoBearer,
    /// More bearers than a node has.
    #[error("{0} bearers configured: a node has at most {MAX_BEARERS} (--udp and --eth together)")]
    TooManyBearers(usize),
    /// The same Ethernet interface twice.
    #[error("Ethernet bearer '{0}' given twice")]
    DuplicateEth(String),
    /// A control group without a control socket.
    #[error("--control-group needs --control PATH")]
    GroupWithoutControl,
    /// A key file that cannot be used.
    #[error("key file {0}: {1}")]
    KeyFile(String, String),
    /// A bad node identity in `node_keys`.
    #[error("node_keys: {0}")]
    BadNodeKey(String),
}

impl NodeConfig {
    /// Read a TOML file.
    pub fn from_file(path: &Path) -> Result<NodeConfig, ConfigError> {
        let p = path.display().to_string();
        let s = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read(p.clone(), e.to_string()))?;
        toml::from_str(&s).map_err(|e| ConfigError::Parse(p, e.message().to_string()))
    }

    /// Apply command-line values over file values: scalars replace, lists extend.
    pub fn merge(mut self, cli: NodeConfig) -> NodeConfig {
        if cli.id.is_some() {
            self.id = cli.id;
        }
        if cli.net_id.is_some() {
            self.net_id = cli.net_id;
        }
        if cli.control.is_some() {
            self.control = cli.control;
        }
        if cli.control_group.is_some() {
            self.control_group = cli.control_group;
        }
        if cli.tolerance_ms.is_some() {
            self.tolerance_ms = cli.tolerance_ms;
        }
        if cli.max_peers.is_some() {
            self.max_peers = cli.max_peers;
        }
        if cli.key_file.is_some() {
            self.key_file = cli.key_file;
        }
        if cli.master_key_file.is_some() {
            self.master_key_file = cli.master_key_file;
        }
        if cli.rekeying_minutes.is_some() {
            self.rekeying_minutes = cli.rekeying_minutes;
        }
        self.node_keys.extend(cli.node_keys);
        self.udp.extend(cli.udp);
        self.udp_peer.extend(cli.udp_peer);
        self.eth.extend(cli.eth);
        self
    }

    /// Check every value; returns the parsed UDP bearer and peer addresses.
    pub fn validate(&self) -> Result<(Vec<SocketAddr>, Vec<SocketAddr>), ConfigError> {
        let net = self.net_id.unwrap_or(4711);
        if !(1..=9999).contains(&net) {
            return Err(ConfigError::BadNetId(net));
        }
        if let Some(t) = self.tolerance_ms {
            if !(50..=30000).contains(&t) {
                return Err(ConfigError::BadTolerance(t));
            }
        }
        if self.max_peers == Some(0) {
            return Err(ConfigError::BadMaxPeers);
        }
        if let Some(id) = &self.id {
            if id.is_empty() || id.len() > 16 {
                return Err(ConfigError::BadIdentity(id.clone()));
            }
        }
        let udp = self
            .udp
            .iter()
            .map(|s| parse_udp_addr(s))
            .collect::<Result<Vec<_>, _>>()?;
        let peers = self
            .udp_peer
            .iter()
            .map(|s| parse_udp_addr(s))
            .collect::<Result<Vec<_>, _>>()?;
        if udp.is_empty() && self.eth.is_empty() {
            return Err(ConfigError::NoBearer);
        }
        let bearers = udp.len() + self.eth.len();
        if bearers > MAX_BEARERS {
            return Err(ConfigError::TooManyBearers(bearers));
        }
        for (i, e) in self.eth.iter().enumerate() {
            if self.eth[..i].contains(e) {
                return Err(ConfigError::DuplicateEth(e.clone()));
            }
        }
        if self.control_group.is_some() && self.control.is_none() {
            return Err(ConfigError::GroupWithoutControl);
        }
        Ok((udp, peers))
    }
}

impl NodeConfig {
    /// The keys to install before the first bearer is enabled, in order: master, cluster,
    /// per-node, then the rekeying setting. Reads the key files.
    pub fn key_settings(&self) -> Result<Vec<KeySetting>, ConfigError> {
        let mut out = Vec::new();
        if let Some(p) = &self.master_key_file {
            out.push(KeySetting {
                key: Some(read_key_file(p)?),
                target: KeyTarget::Master,
                rekeying: None,
            });
        }
        if let Some(p) = &self.key_file {
            out.push(KeySetting {
                key: Some(read_key_file(p)?),
                target: KeyTarget::Cluster,
                rekeying: None,
            });
        }
        for k in &self.node_keys {
            let id = parse_node_id(&k.node).map_err(|e| ConfigError::BadNodeKey(e.to_string()))?;
            out.push(KeySetting {
                key: Some(read_key_file(&k.key_file)?),
                target: KeyTarget::Node(id),
                rekeying: None,
            });
        }
        if let Some(m) = self.rekeying_minutes {
            out.push(KeySetting {
                key: None,
                target: KeyTarget::Cluster,
                rekeying: Some(Rekeying::Minutes(m)),
            });
        }
        Ok(out)
    }
}

/// Read a key file: one key as `tipc node set key` takes it, white space around it ignored.
/// Refused when other users may read it (as ssh refuses such a private key).
pub fn read_key_file(path: &Path) -> Result<Key, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let p = path.display().to_string();
    let err = |e: String| ConfigError::KeyFile(p.clone(), e);
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o004 != 0 {
        return Err(err(format!(
            "readable by other users (mode {mode:04o}): chmod 600 it"
        )));
    }
    if meta.len() > 4096 {
        return Err(err("too large for a key".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let text = zeroize::Zeroizing::new(text);
    Key::parse(text.trim()).map_err(|e| err(e.to_string()))
}

/// Parse `IP[:PORT]` (IPv6 with a port in brackets); the default port is 6118.
pub fn parse_udp_addr(s: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    let t = s.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    Err(ConfigError::BadUdpAddr(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_udp_addr_accepts_ip_with_and_without_port() {
        assert_eq!(
            parse_udp_addr("127.0.0.1").unwrap(),
            "127.0.0.1:6118".parse().unwrap()
        );
        assert_eq!(
            parse_udp_addr("127.0.0.1:7000").unwrap(),
            "127.0.0.1:7000".parse().unwrap()
        );
        assert_eq!(
            parse_udp_addr("::1").unwrap(),
            "[::1]:6118".parse().unwrap()
        );
        assert_eq!(
            parse_udp_addr("[::1]:9").unwrap(),
            "[::1]:9".parse().unwrap()
        );
        assert!(matches!(
            parse_udp_addr("localhost"),
            Err(ConfigError::BadUdpAddr(_))
        ));
        assert!(matches!(
            parse_udp_addr("1.2.3.4:99999"),
            Err(ConfigError::BadUdpAddr(_))
        ));
    }

    #[test]
    fn validate_rejects_bad_values() {
        let c = NodeConfig {
            udp: vec!["127.0.0.1".into()],
            ..Default::default()
        };
        assert!(c.validate().is_ok());
        let bad = NodeConfig {
            net_id: Some(0),
            ..c.clone()
        };
        assert_eq!(bad.validate(), Err(ConfigError::BadNetId(0)));
        let bad = NodeConfig {
            id: Some("x".repeat(17)),
            ..c.clone()
        };
        assert!(matches!(bad.validate(), Err(ConfigError::BadIdentity(_))));
        assert_eq!(NodeConfig::default().validate(), Err(ConfigError::NoBearer));
        let bad = NodeConfig {
            max_peers: Some(0),
            ..c.clone()
        };
        assert_eq!(bad.validate(), Err(ConfigError::BadMaxPeers));
    }

    /// Refused before any bearer is opened (a fourth bearer used to fail half-way through the
    /// start, with three bearers already running).
    #[test]
    fn validate_rejects_more_bearers_than_a_node_has_and_duplicates() {
        let four = NodeConfig {
            udp: (1..=4).map(|i| format!("127.0.0.1:{}", 7000 + i)).collect(),
            ..Default::default()
        };
        assert_eq!(four.validate(), Err(ConfigError::TooManyBearers(4)));
        let mixed = NodeConfig {
            udp: vec!["127.0.0.1".into(), "127.0.0.2".into()],
            eth: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        assert_eq!(mixed.validate(), Err(ConfigError::TooManyBearers(4)));
        let dup = NodeConfig {
            eth: vec!["lo".into(), "lo".into()],
            ..Default::default()
        };
        assert_eq!(dup.validate(), Err(ConfigError::DuplicateEth("lo".into())));
        let group = NodeConfig {
            udp: vec!["127.0.0.1".into()],
            control_group: Some("tipc".into()),
            ..Default::default()
        };
        assert_eq!(group.validate(), Err(ConfigError::GroupWithoutControl));
        let ok = NodeConfig {
            control: Some("/run/tipc/n.sock".into()),
            ..group
        };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn toml_config_parses_and_cli_overrides() {
        let f: NodeConfig = toml::from_str(
            "id = \"n1\"\nnet_id = 42\nudp = [\"127.0.0.1:7000\"]\nudp_peer = [\"127.0.0.1:7001\"]\n",
        )
        .unwrap();
        assert_eq!(f.net_id, Some(42));
        let m = f.merge(NodeConfig {
            id: Some("n2".into()),
            udp_peer: vec!["127.0.0.1:7002".into()],
            ..Default::default()
        });
        assert_eq!(m.id.as_deref(), Some("n2"));
        assert_eq!(m.udp_peer.len(), 2);
        assert!(toml::from_str::<NodeConfig>("bogus = 1").is_err());
    }
}
