//! Fuzz target: arbitrary bytes into the service layer's envelope parser
//! (`runtime/src/service/envelope.rs`, compiled here from its source: it depends on nothing
//! but std and thiserror, so the fuzzer need not build the runtime). What parses must
//! re-emit to the bytes it consumed, bar bits the parser ignores (optional flags, the trace
//! context's version byte), and parse again to the same envelope; an error reply's payload
//! parses without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../../runtime/src/service/envelope.rs"]
#[allow(dead_code)]
mod envelope;

use envelope::{parse_error_payload, Envelope};

fuzz_target!(|data: &[u8]| {
    if let Ok((env, rest)) = Envelope::parse(data) {
        let consumed = data.len() - rest.len();
        assert_eq!(consumed, env.len());
        let mut out = Vec::new();
        env.emit(&mut out);
        assert_eq!(out.len(), consumed);
        let (again, tail) = Envelope::parse(&out).expect("re-emitted envelope parses");
        assert_eq!(again, env);
        assert!(tail.is_empty());
    } else if let Err(e) = Envelope::parse(data) {
        let _ = (e.reply_to(), e.code());
    }
    let _ = parse_error_payload(data);
});
