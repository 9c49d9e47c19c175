//! `kv-store` (`cargo run -p tipc-examples --bin kv-store`): a key-value store partitioned
//! over three nodes by service ranges. Shard i binds {2200, lower..=upper}, a third of the
//! 256 key-hash instances each; a client puts and gets keys by asking service {2200,
//! hash(key)}, and TIPC's lookup routes each to the shard whose range holds that instance.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;
use tipc_runtime::service::Binding;
use tipc_runtime::{free_loopback_ports, tipc_service, Node, ServiceRange, System, TipcMessage};

/// Store a value; the reply names the shard.
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1, reply = String)]
struct Put(String, String);

/// Read a value and the shard holding it.
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 2, reply = (Option<String>, String))]
struct Get(String);

struct Shard(String, HashMap<String, String>);

#[tipc_service(type = 2200, range = 0..=255)]
impl Shard {
    #[handle]
    fn put(&mut self, m: Put) -> String {
        self.1.insert(m.0, m.1);
        self.0.clone()
    }

    #[handle]
    fn get(&mut self, m: Get) -> (Option<String>, String) {
        (self.1.get(&m.0).cloned(), self.0.clone())
    }
}

/// The key's instance: FNV-1a folded to 0..=255.
fn hash(key: &str) -> u32 {
    let h = key.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    (h ^ h >> 8 ^ h >> 16 ^ h >> 24) & 0xFF
}

fn main() {
    let ports = free_loopback_ports(3).expect("free ports");
    System::new().block_on(async move {
        let mut nodes = Vec::new();
        for (i, (lo, hi)) in [(0, 85), (86, 170), (171, 255)].into_iter().enumerate() {
            let peers: Vec<u16> = ports.iter().copied().filter(|p| *p != ports[i]).collect();
            let node = Node::loopback(&format!("kv{i}"), ports[i], &peers).expect("node");
            let mut at = Binding::of::<Shard>();
            at.range = ServiceRange::new(2200, lo, hi).expect("range");
            let name = format!("shard{i} {{2200, {lo}..={hi}}}");
            let shard = node.serve_at(Shard(name, HashMap::new()), at).await;
            nodes.push((node, shard.expect("serve")));
        }
        let client = &nodes[0].0;
        let all = ServiceRange::new(2200, 0, 255).expect("range");
        assert!(
            client.wait_bound(all, 3, Duration::from_secs(10)).await,
            "shards not bound"
        );
        let keys = [
            "apple",
            "banana",
            "cherry",
            "date",
            "elderberry",
            "fig",
            "grape",
        ];
        for k in keys {
            let at = client
                .service(2200, hash(k))
                .ask(&Put(k.into(), k.to_uppercase()))
                .await;
            println!("put {k:<10} hash {:>3} -> {}", hash(k), at.expect("put"));
        }
        for k in keys {
            let (v, at) = client
                .service(2200, hash(k))
                .ask(&Get(k.into()))
                .await
                .expect("get");
            println!(
                "get {k:<10} = {:<12} from {at}",
                v.as_deref().unwrap_or("(missing)")
            );
            assert_eq!(v, Some(k.to_uppercase()), "lost {k}");
        }
        for (node, shard) in &nodes {
            shard.stop().await;
            node.shutdown().await;
        }
    });
}
