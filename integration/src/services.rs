//! Services of the service-layer tests (issue 13), shared by the tests and the `svc-host`
//! process they start.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use tipc_actors::sock::group::Mode;
use tipc_runtime::service::{Member, Raw};
use tipc_runtime::{tipc_service, Ctx, ReplyTo, ServiceAddr, TipcMessage};

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

/// Group type of [`GroupProbe`].
pub const GROUP_PROBE_TYPE: u32 = 3100;

/// A numbered group message (numbers run across modes, per sender).
#[derive(Serialize, Deserialize, TipcMessage, Debug, Clone, Copy)]
#[tipc(id = 1)]
pub struct Num {
    /// The sender's sequence number.
    pub n: u64,
}

/// An ask to a group member: the square of the number.
#[derive(Serialize, Deserialize, TipcMessage, Debug, Clone, Copy)]
#[tipc(id = 2, reply = u64)]
pub struct Square(pub u64);

/// An ask to a group member that it never answers (it holds the reply until it stops).
#[derive(Serialize, Deserialize, TipcMessage, Debug, Clone, Copy)]
#[tipc(id = 3, reply = u64)]
pub struct Hang;

/// A group member that logs what it receives, in order: `MSG <instance> <n> <mode>`,
/// `JOIN <instance>`, `LEAVE <instance>`; optionally slow (a sleep per message) and printing
/// each line (`echo`) for a test that reads it from another process. It answers [`Square`]
/// asks and holds [`Hang`] asks unanswered.
pub struct GroupProbe {
    /// The log, shared with the test.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Sleep this long per message (blocks the node's thread: one member per process).
    pub slow: Duration,
    /// Print each log line to stdout too.
    pub echo: bool,
    /// The [`Hang`] asks held.
    pub held: Vec<ReplyTo<u64>>,
}

impl GroupProbe {
    fn record(&mut self, line: String) {
        if self.echo {
            println!("{line}");
        }
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }
}

#[tipc_service(group = 3100, instance = 0)]
impl GroupProbe {
    #[handle]
    fn num(&mut self, m: Num, cx: &mut Ctx<Self>) {
        if !self.slow.is_zero() {
            std::thread::sleep(self.slow);
        }
        let (member, mode) = cx.member().unwrap_or_default_member();
        self.record(format!("MSG {} {} {}", member.instance, m.n, mode.as_str()));
    }

    #[handle]
    fn square(&mut self, m: Square) -> u64 {
        m.0 * m.0
    }

    #[handle]
    fn hang(&mut self, _m: Hang, reply: ReplyTo<u64>) {
        self.held.push(reply);
    }

    #[on_join]
    fn joined(&mut self, m: Member) {
        self.record(format!("JOIN {}", m.instance));
    }

    #[on_leave]
    fn left(&mut self, m: Member) {
        self.record(format!("LEAVE {}", m.instance));
    }
}

/// `cx.member()` of a group service is always set; a stand-in otherwise.
trait OrDefaultMember {
    fn unwrap_or_default_member(self) -> (ServiceAddr, Mode);
}

impl OrDefaultMember for Option<(ServiceAddr, Mode)> {
    fn unwrap_or_default_member(self) -> (ServiceAddr, Mode) {
        self.unwrap_or((
            ServiceAddr {
                type_: 0,
                instance: u32::MAX,
            },
            Mode::Unicast,
        ))
    }
}

/// Service type of [`Upper`].
pub const UPPER_TYPE: u32 = 2500;

/// A raw service (no envelope): answers each datagram with its bytes in upper case, so a
/// plain TIPC client (the kernel's `tipc-helper rdm-client`, `tipcctl send rdm`) can call it.
pub struct Upper;

#[tipc_service(type = 2500, instance = 1)]
impl Upper {
    #[handle]
    fn upper(&mut self, m: Raw) -> Option<Vec<u8>> {
        Some(m.data.to_ascii_uppercase())
    }
}

/// A raw group member of group 3200 (for a kernel member, which speaks plain bytes): answers
/// each message with its bytes in upper case by unicast (not messages starting `echo:`, the
/// kernel helper's answers), prints `GOT DATA` for each, and broadcasts `actor-hi` when a member
/// joins.
pub struct Shout;

#[tipc_service(group = 3200, instance = 5)]
impl Shout {
    #[handle]
    fn shout(&mut self, m: Raw) -> Option<Vec<u8>> {
        println!("GOT {}", String::from_utf8_lossy(&m.data));
        (!m.data.starts_with(b"echo:")).then(|| m.data.to_ascii_uppercase())
    }

    #[on_join]
    fn joined(&mut self, m: Member, cx: &mut Ctx<Self>) {
        println!("JOINED {}", m.instance);
        if let Some(g) = cx.group() {
            cx.spawn(async move {
                let _ = g.broadcast_raw(&b"actor-hi"[..]).await;
            });
        }
    }
}

/// Service type of [`Front`] (the traced chain's middle hop).
pub const FRONT_TYPE: u32 = 2001;
/// Service type of [`Back`] (the traced chain's last hop).
pub const BACK_TYPE: u32 = 2002;

/// The trace ids handlers saw as current in this process: (service type, trace id).
static TRACE_IDS_SEEN: std::sync::Mutex<Vec<(u32, [u8; 16])>> = std::sync::Mutex::new(Vec::new());

fn trace_id_seen_now(type_: u32) {
    use opentelemetry::trace::TraceContextExt;
    let id =
        opentelemetry::Context::map_current(|cx| cx.span().span_context().trace_id().to_bytes());
    TRACE_IDS_SEEN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((type_, id));
}

/// What [`Front`] and [`Back`] handlers saw as the current trace id, in order.
pub fn trace_ids_seen() -> Vec<(u32, [u8; 16])> {
    TRACE_IDS_SEEN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// Forget the trace ids seen so far.
pub fn clear_trace_ids_seen() {
    TRACE_IDS_SEEN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
}

/// Asked of [`Front`]: answered with what [`Back`] answers to `Inc` of the same number.
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1, reply = u64)]
pub struct Relay(pub u64);

/// Asked of [`Back`]: answered with the number plus one.
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 2, reply = u64)]
pub struct Inc(pub u64);

/// Asks [`Back`] from a spawned future (a nested ask) and answers with its reply.
pub struct Front;

#[tipc_service(type = 2001, instance = 1, scope = cluster)]
impl Front {
    #[handle]
    fn relay(&mut self, m: Relay, cx: &mut Ctx<Self>, reply: ReplyTo<u64>) {
        trace_id_seen_now(FRONT_TYPE);
        let back = tipc_runtime::ServiceRef::new(
            cx.clients(),
            tipc_runtime::service::Target::Service(ServiceAddr {
                type_: BACK_TYPE,
                instance: 1,
            }),
        );
        cx.spawn(async move {
            // Dropped without a reply on an error: the asker gets an error reply.
            if let Ok(v) = back.ask(&Inc(m.0)).await {
                // Recorded on this handler's span (spawned futures keep its context).
                tracing::info!(answer = v, "front relayed");
                reply.send(v);
            }
        });
    }
}

/// Answers `Inc`.
pub struct Back;

#[tipc_service(type = 2002, instance = 1, scope = cluster)]
impl Back {
    #[handle]
    fn inc(&mut self, m: Inc) -> u64 {
        trace_id_seen_now(BACK_TYPE);
        // Recorded on this handler's span when the subscriber has the events layer.
        tracing::info!(n = m.0, "back answered");
        m.0 + 1
    }
}
