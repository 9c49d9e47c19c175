//! Services of the service-layer tests (issue 13), shared by the tests and the `svc-host`
//! process they start.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use tipc_runtime::{tipc_service, Ctx, ReplyTo, TipcMessage};

/// Service type of [`Probe`].
pub const PROBE_TYPE: u32 = 1100;

/// Answers `Ping` with its tag, `Hold` after a delay; counts `Seq` tells and checks that
/// each client's arrive in order.
#[derive(Default)]
pub struct Probe {
    /// A tag answered with every `Ping` (which instance answered).
    pub tag: u32,
    /// Tells counted.
    pub told: u64,
    /// Next expected sequence number per client.
    pub next: std::collections::HashMap<u32, u64>,
    /// Tells that were not the next of their client (missing, doubled or reordered).
    pub out_of_order: u64,
}

impl Probe {
    /// A probe answering `tag`.
    pub fn new(tag: u32) -> Probe {
        Probe {
            tag,
            ..Probe::default()
        }
    }
}

/// Ask: which probe answers (its tag).
#[derive(Serialize, Deserialize, TipcMessage, Debug, Clone, Copy)]
#[tipc(id = 1, reply = u32)]
pub struct Ping;

/// Ask: answered `value` after `ms` milliseconds.
#[derive(Serialize, Deserialize, TipcMessage, Debug, Clone, Copy)]
#[tipc(id = 2, reply = u64)]
pub struct Hold {
    /// Delay.
    pub ms: u64,
    /// Answer.
    pub value: u64,
}

/// Tell with a client id and sequence number; `Seen` asks what arrived.
#[derive(Serialize, Deserialize, TipcMessage, Debug, Clone, Copy)]
#[tipc(id = 3)]
pub struct Seq {
    /// Which client.
    pub client: u32,
    /// Its sequence number, from 0.
    pub n: u64,
}

/// Ask: how many `Seq` tells arrived, and how many of them out of order.
#[derive(Serialize, Deserialize, TipcMessage, Debug, Clone, Copy)]
#[tipc(id = 4, reply = (u64, u64))]
pub struct Told;

#[tipc_service(type = 1100, instance = 0)]
impl Probe {
    #[handle]
    fn ping(&mut self, _m: Ping) -> u32 {
        self.tag
    }

    #[handle]
    fn hold(&mut self, m: Hold, cx: &mut Ctx<Self>, reply: ReplyTo<u64>) {
        cx.spawn(async move {
            tokio::time::sleep(Duration::from_millis(m.ms)).await;
            reply.send(m.value);
        });
    }

    #[handle]
    fn seq(&mut self, m: Seq) {
        self.told += 1;
        let next = self.next.entry(m.client).or_insert(0);
        if m.n != *next {
            self.out_of_order += 1;
        }
        *next = m.n + 1;
    }

    #[handle]
    fn told(&mut self, _m: Told) -> (u64, u64) {
        (self.told, self.out_of_order)
    }
}
