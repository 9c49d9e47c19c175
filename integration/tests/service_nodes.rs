//! The service layer between two in-process nodes over UDP on loopback (issue 13): typed
//! tells and asks to `#[tipc_service]` actors, errors answered at once (unknown id,
//! undecodable, envelope version, must-understand flag, panic, stop), deferred replies, ask
//! timeouts and cancel safety.

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tipc_actors::addr::{ServiceAddr, ServiceRange};
use tipc_integration::cluster::udp_cluster;
use tipc_runtime::service::envelope::{parse_error_payload, Envelope, ErrorCode, Kind};
use tipc_runtime::service::AskError;
use tipc_runtime::{tipc_service, Ctx, Node, ReplyTo, TipcMessage};

// ---- the two-handler service of the README: 15 lines, messages included ----
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1)]
struct Add(u64);
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 2, reply = u64)]
struct Get;
struct Counter(u64);
#[tipc_service(type = 1000, instance = 1)]
impl Counter {
    #[handle]
    fn add(&mut self, m: Add) {
        self.0 += m.0
    }
    #[handle]
    fn get(&mut self, _: Get) -> u64 {
        self.0
    }
}
// ---- end of the 15 lines ----

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 10, reply = String)]
struct Echo(String);

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 11)]
struct Boom;

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 12, reply = u32)]
struct Later {
    after_ms: u64,
    value: u32,
}

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 13, reply = u32)]
struct Forget;

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 14, reply = u32)]
struct Whoami;

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 15, reply = u32)]
struct Threaded(u32);

/// A message no test service handles.
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 999, reply = u32)]
struct Stranger;

struct Tools {
    echoed: u32,
}

#[tipc_service(type = 1001, instance = 7, scope = cluster)]
impl Tools {
    #[handle]
    fn echo(&mut self, m: Echo) -> String {
        self.echoed += 1;
        format!("echo:{}", m.0)
    }

    #[handle]
    fn boom(&mut self, _m: Boom) {
        panic!("boom on purpose");
    }

    #[handle]
    fn later(&mut self, m: Later, cx: &mut Ctx<Self>, reply: ReplyTo<u32>) {
        cx.spawn(async move {
            tokio::time::sleep(Duration::from_millis(m.after_ms)).await;
            reply.send(m.value);
        });
    }

    #[handle]
    fn forget(&mut self, _m: Forget, reply: ReplyTo<u32>) {
        drop(reply);
    }

    #[handle]
    fn threaded(&mut self, m: Threaded, reply: ReplyTo<u32>) {
        // A plain thread, outside any runtime: the reply still goes out.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            reply.send(m.0 * 2);
        });
    }

    #[handle]
    fn whoami(&mut self, _m: Whoami, cx: &mut Ctx<Self>) -> u32 {
        cx.from().node
    }
}

async fn two_nodes() -> (Node, Node) {
    let mut v = udp_cluster("svc", 2).await;
    let b = Node::from_transport(v.pop().expect("node"));
    let a = Node::from_transport(v.pop().expect("node"));
    (a, b)
}

/// Wait until `node` sees a binding of `type_` (bounded).
async fn wait_binding(node: &Node, type_: u32, present: bool) {
    for _ in 0..500 {
        let seen = node
            .transport()
            .nametable()
            .await
            .iter()
            .any(|p| p.range.type_() == type_);
        if seen == present {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("binding of {type_} never became present={present}");
}

#[test]
fn counter_service_on_another_node_takes_tells_and_answers_asks_in_order() {
    actix_rt::System::new().block_on(async {
        let (a, b) = two_nodes().await;
        let h = b.serve(Counter(0)).await.expect("serve");
        wait_binding(&a, 1000, true).await;
        let c = a.service(1000, 1);
        for i in 1..=100u64 {
            c.tell(&Add(i)).await.expect("tell");
        }
        // The ask follows the tells from the same socket: the link keeps their order.
        assert_eq!(c.ask(&Get).await, Ok(5050));
        let s = h.stats();
        assert_eq!((s.tells, s.asks, s.replies), (100, 1, 1));
        assert_eq!(a.clients().pending_asks(), 0);
    });
}

#[test]
fn service_answers_unknown_id_undecodable_version_and_flag_with_errors_and_keeps_serving() {
    actix_rt::System::new().block_on(async {
        let (a, b) = two_nodes().await;
        let h = b.serve(Tools { echoed: 0 }).await.expect("serve");
        wait_binding(&a, 1001, true).await;
        let t = a.service(1001, 7);
        // Unknown id, through the typed API.
        match t.ask(&Stranger).await {
            Err(AskError::Remote {
                code: ErrorCode::UnknownMessage,
                ..
            }) => {}
            other => panic!("unknown id: {other:?}"),
        }
        // Raw asks: undecodable payload, another version, an unknown must-understand flag.
        let raw = a.transport().dgram_socket();
        let dest = ServiceAddr {
            type_: 1001,
            instance: 7,
        };
        let cases: [(&str, Vec<u8>, ErrorCode); 3] = [
            (
                "undecodable",
                ask_bytes(10, 1, &[0xc1]),
                ErrorCode::Undecodable,
            ),
            (
                "version",
                with_byte(ask_bytes(10, 2, &[]), 0, 0x22),
                ErrorCode::Version,
            ),
            (
                "flag",
                with_byte(ask_bytes(10, 3, &[]), 1, 0x80),
                ErrorCode::MustUnderstand,
            ),
        ];
        for (what, bytes, want) in cases {
            let corr = u64::from_be_bytes(bytes[6..14].try_into().unwrap());
            raw.send_to_service(dest, &bytes).await.expect("send");
            let r = tokio::time::timeout(Duration::from_secs(2), raw.recv())
                .await
                .unwrap_or_else(|_| panic!("{what}: no answer within a round trip"))
                .expect("socket open");
            let (env, payload) = Envelope::parse(&r.data).expect("answer parses");
            assert_eq!((env.kind, env.correlation), (Kind::Error, corr), "{what}");
            assert_eq!(parse_error_payload(payload).0, want, "{what}");
        }
        // A bad tell is counted, nobody to answer.
        let mut tell = Vec::new();
        Envelope::tell(10).emit(&mut tell);
        tell.push(0xc1);
        raw.send_to_service(dest, &tell).await.expect("send");
        // Still serving.
        assert_eq!(t.ask(&Echo("hi".into())).await.as_deref(), Ok("echo:hi"));
        let s = h.stats();
        assert_eq!(s.bad_tells, 1, "{s:?}");
        assert_eq!(s.errors, 4, "{s:?}");
    });
}

fn ask_bytes(id: u32, corr: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    Envelope::ask(id, corr).emit(&mut v);
    v.extend_from_slice(payload);
    v
}

fn with_byte(mut v: Vec<u8>, at: usize, b: u8) -> Vec<u8> {
    v[at] = b;
    v
}

#[test]
fn handler_panic_answers_panicked_fails_queued_asks_and_withdraws_the_binding() {
    actix_rt::System::new().block_on(async {
        let (a, b) = two_nodes().await;
        let h = b.serve(Tools { echoed: 0 }).await.expect("serve");
        wait_binding(&a, 1001, true).await;
        let t = a.service(1001, 7);
        // Asks queued behind the panicking one, all sent before it is handled.
        let start = Instant::now();
        let boom = {
            let t = t.clone();
            actix_rt::spawn(async move { t.ask(&Boom).await })
        };
        let mut v = Vec::new();
        for i in 0..20 {
            let t = t.clone();
            v.push(actix_rt::spawn(async move {
                t.ask(&Echo(format!("{i}"))).await
            }));
        }
        assert_eq!(boom.await.expect("task"), Err(AskError::Panicked));
        let mut results = Vec::new();
        for f in v {
            results.push(f.await.expect("task"));
        }
        let took = start.elapsed();
        for r in &results {
            assert!(
                matches!(r, Err(AskError::ServiceGone) | Ok(_)),
                "queued ask: {r:?}"
            );
        }
        assert!(
            results.iter().any(|r| r == &Err(AskError::ServiceGone)),
            "no ask was behind the panic: {results:?}"
        );
        assert!(took < Duration::from_secs(1), "asks failed late: {took:?}");
        assert!(!h.is_running());
        assert_eq!(h.stats().panics, 1);
        let t0 = Instant::now();
        wait_binding(&a, 1001, false).await;
        assert!(
            t0.elapsed() < Duration::from_millis(50),
            "withdrawal took {:?}",
            t0.elapsed()
        );
        assert_eq!(t.ask(&Echo("x".into())).await, Err(AskError::NoService));
        assert_eq!(a.clients().pending_asks(), 0);
    });
}

#[test]
fn stopped_service_is_withdrawn_and_later_asks_fail_at_once() {
    actix_rt::System::new().block_on(async {
        let (a, b) = two_nodes().await;
        let h = b.serve(Counter(0)).await.expect("serve");
        wait_binding(&a, 1000, true).await;
        let c = a.service(1000, 1);
        assert_eq!(c.ask(&Get).await, Ok(0));
        let t0 = Instant::now();
        h.stop().await;
        wait_binding(&a, 1000, false).await;
        let seen = t0.elapsed();
        assert!(
            seen < Duration::from_millis(50),
            "withdrawal seen after {seen:?}"
        );
        let t1 = Instant::now();
        assert_eq!(c.ask(&Get).await, Err(AskError::NoService));
        assert!(t1.elapsed() < Duration::from_millis(50));
        assert!(!h.is_running());
    });
}

#[test]
fn deferred_reply_from_a_spawned_future_and_a_dropped_reply_to_answer_the_asker() {
    actix_rt::System::new().block_on(async {
        let (a, b) = two_nodes().await;
        let _h = b.serve(Tools { echoed: 0 }).await.expect("serve");
        wait_binding(&a, 1001, true).await;
        let t = a.service(1001, 7);
        assert_eq!(
            t.ask(&Later {
                after_ms: 20,
                value: 42
            })
            .await,
            Ok(42)
        );
        match t.ask(&Forget).await {
            Err(AskError::Remote {
                code: ErrorCode::ReplyFailed,
                ..
            }) => {}
            other => panic!("dropped ReplyTo: {other:?}"),
        }
        assert_eq!(t.ask(&Whoami).await, Ok(a.addr()));
        assert_eq!(t.ask(&Threaded(21)).await, Ok(42));
    });
}

#[test]
fn ask_timeout_is_honoured_and_timed_out_or_dropped_asks_leave_nothing_pending() {
    actix_rt::System::new().block_on(async {
        let (a, b) = two_nodes().await;
        let _h = b.serve(Tools { echoed: 0 }).await.expect("serve");
        wait_binding(&a, 1001, true).await;
        let t = a.service(1001, 7);
        let slow = Later {
            after_ms: 2_000,
            value: 1,
        };
        let t0 = Instant::now();
        let r = t.ask_timeout(&slow, Duration::from_millis(200)).await;
        let took = t0.elapsed();
        assert_eq!(r, Err(AskError::Timeout(Duration::from_millis(200))));
        assert!(
            took >= Duration::from_millis(200) && took <= Duration::from_millis(220),
            "timeout after {took:?}"
        );
        // 10,000 asks: half time out, half are dropped before their reply.
        let quick = Later {
            after_ms: 50,
            value: 2,
        };
        let mut timed_out = 0;
        for i in 0..10_000 {
            if i % 2 == 0 {
                if t.ask_timeout(&quick, Duration::from_micros(1))
                    .await
                    .is_err()
                {
                    timed_out += 1;
                }
            } else {
                let f = t.ask(&quick);
                drop(f);
                let f = Box::pin(t.ask(&quick));
                // Polled once (sent), then dropped.
                let _ = tokio::time::timeout(Duration::from_micros(1), f).await;
            }
        }
        assert_eq!(timed_out, 5_000);
        assert_eq!(a.clients().pending_asks(), 0);
        // The late replies arrive and are counted, not matched.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(a.clients().pending_asks(), 0);
        assert!(a.clients().stats().late_replies > 0);
    });
}

#[test]
fn ask_to_a_missing_service_or_range_fails_without_waiting() {
    actix_rt::System::new().block_on(async {
        let (a, _b) = two_nodes().await;
        let t0 = Instant::now();
        assert_eq!(a.service(4242, 1).ask(&Get).await, Err(AskError::NoService));
        assert!(t0.elapsed() < Duration::from_millis(50));
        let r = a
            .services(ServiceRange::new(4242, 0, 9).expect("range"))
            .ask(&Get)
            .await;
        assert!(matches!(r, Err(AskError::Remote { .. })), "{r:?}");
    });
}

#[test]
fn raw_service_answers_a_plain_tipc_datagram_without_envelope() {
    actix_rt::System::new().block_on(async {
        let (a, b) = two_nodes().await;
        let _h = b
            .serve(tipc_integration::services::Upper)
            .await
            .expect("serve");
        wait_binding(&a, 2500, true).await;
        // A plain RDM socket, as a kernel client would use.
        let raw = a.transport().dgram_socket();
        let dest = ServiceAddr {
            type_: 2500,
            instance: 1,
        };
        raw.send_to_service(dest, b"hello, raw")
            .await
            .expect("send");
        let r = tokio::time::timeout(Duration::from_secs(2), raw.recv())
            .await
            .expect("a reply within a round trip")
            .expect("socket open");
        assert_eq!(&r.data[..], b"HELLO, RAW");
    });
}
