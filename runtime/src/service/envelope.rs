//! The service layer's envelope: the few bytes in front of every typed message, inside a TIPC
//! datagram's payload (sans-IO: parse and emit only).
//!
//! ```text
//! byte 0      version (high 4 bits, 1) | kind (low 4 bits: 1 tell, 2 ask, 3 reply, 4 error,
//!             5 ack)
//! byte 1      flags: bit 0 deadline, bit 1 trace context; bits 2-3 optional (ignored when
//!             unknown); bits 4-7 must-understand (an unknown one is refused)
//! bytes 2-5   message id (u32, big endian); a reply or error carries its request's id; an
//!             ack carries the number of tells consumed (the tell window, below)
//! bytes 6-13  correlation id (u64), for ask, reply and error only
//! then        deadline: u32 milliseconds left when sent (relative: node clocks differ)
//! then        trace context: 26 bytes, W3C binary traceparent (version 0, trace id 16,
//!             parent span id 8, flags 1)
//! then        the payload (MessagePack of the message, or of the reply; an error's payload is
//!             its code byte and UTF-8 detail)
//! ```
//!
//! A tell is 6 bytes of envelope, an ask 14, an ask with deadline and trace context 44.
//!
//! Tells are flow controlled end to end, as TIPC flow-controls a connection: a client has at
//! most a window of tells unconsumed at one service socket, and the service acknowledges what
//! it consumed with acks (kind 5) to the sending socket, so a fast client waits instead of
//! overflowing a slow service's socket (which would return its tells).
//! Bytes 0-13 keep their meaning in every version, so a node can answer an ask of a version it
//! does not know with [`ErrorCode::Version`] (it reads the kind and the correlation id).

use std::fmt;

/// The envelope version this node speaks.
pub const VERSION: u8 = 1;
/// Flag: a deadline follows the fixed part.
pub const FLAG_DEADLINE: u8 = 0x01;
/// Flag: a trace context follows (after the deadline, if any).
pub const FLAG_TRACE: u8 = 0x02;
/// Flags a receiver may ignore when it does not know them.
pub const FLAGS_OPTIONAL: u8 = 0x0C;
/// Flags a receiver must refuse when it does not know them (none are defined in version 1).
pub const FLAGS_MUST_UNDERSTAND: u8 = 0xF0;
/// Length of the binary trace context.
pub const TRACE_LEN: usize = 26;
/// The longest envelope (ask with deadline and trace context).
pub const MAX_LEN: usize = 14 + 4 + TRACE_LEN;

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// One-way message.
    Tell,
    /// Request expecting a reply with the same correlation id.
    Ask,
    /// The reply to an ask.
    Reply,
    /// An ask refused or failed: the payload is an [`ErrorCode`] byte and a detail text.
    Error,
    /// Tells consumed by a service, acknowledged to their sender (count in the id field).
    Ack,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Tell => 1,
            Kind::Ask => 2,
            Kind::Reply => 3,
            Kind::Error => 4,
            Kind::Ack => 5,
        }
    }

    fn from_code(c: u8) -> Option<Kind> {
        Some(match c {
            1 => Kind::Tell,
            2 => Kind::Ask,
            3 => Kind::Reply,
            4 => Kind::Error,
            5 => Kind::Ack,
            _ => return None,
        })
    }

    /// Whether a correlation id follows the message id.
    pub fn correlated(self) -> bool {
        matches!(self, Kind::Ask | Kind::Reply | Kind::Error)
    }
}

/// A W3C trace context in its binary form (trace id, parent span id, flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceContext {
    /// Trace id (all zero is invalid in W3C terms).
    pub trace_id: [u8; 16],
    /// The sender's span id.
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

/// The parsed fixed and optional fields of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Envelope {
    /// What the message is.
    pub kind: Kind,
    /// The message type's stable id (`#[tipc(id = N)]`).
    pub id: u32,
    /// Correlation id of an ask and its reply or error (0 for a tell).
    pub correlation: u64,
    /// Milliseconds the sender will wait, counted from when it sent.
    pub deadline_ms: Option<u32>,
    /// The caller's trace context.
    pub trace: Option<TraceContext>,
}

/// Why an envelope was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Shorter than its fields say.
    #[error("truncated envelope")]
    Truncated,
    /// Unknown kind.
    #[error("unknown message kind {0}")]
    BadKind(u8),
    /// A version this node does not speak; an ask of it can still be answered (`reply_to`).
    #[error("envelope version {version} (this node speaks {VERSION})")]
    Version {
        /// The version found.
        version: u8,
        /// The ask to answer with [`ErrorCode::Version`], if it was one.
        reply_to: Option<(u32, u64)>,
    },
    /// A must-understand flag this node does not know; an ask can still be answered.
    #[error("unknown must-understand flags {flags:#04x}")]
    MustUnderstand {
        /// The unknown flags.
        flags: u8,
        /// The ask to answer with [`ErrorCode::MustUnderstand`], if it was one.
        reply_to: Option<(u32, u64)>,
    },
}

impl EnvelopeError {
    /// The ask (message id, correlation id) to answer with an error, if the refused message
    /// was an ask whose id could be read.
    pub fn reply_to(&self) -> Option<(u32, u64)> {
        match *self {
            EnvelopeError::Version { reply_to, .. }
            | EnvelopeError::MustUnderstand { reply_to, .. } => reply_to,
            _ => None,
        }
    }

    /// The error code to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            EnvelopeError::Version { .. } => ErrorCode::Version,
            EnvelopeError::MustUnderstand { .. } => ErrorCode::MustUnderstand,
            _ => ErrorCode::Undecodable,
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl Envelope {
    /// A tell of message `id`.
    pub fn tell(id: u32) -> Envelope {
        Envelope {
            kind: Kind::Tell,
            id,
            correlation: 0,
            deadline_ms: None,
            trace: None,
        }
    }

    /// An ask of message `id` with `correlation`.
    pub fn ask(id: u32, correlation: u64) -> Envelope {
        Envelope {
            kind: Kind::Ask,
            id,
            correlation,
            deadline_ms: None,
            trace: None,
        }
    }

    /// An ack of `count` consumed tells.
    pub fn ack(count: u32) -> Envelope {
        Envelope {
            kind: Kind::Ack,
            id: count,
            correlation: 0,
            deadline_ms: None,
            trace: None,
        }
    }

    /// The reply (or error, `kind`) to this ask.
    pub fn answer(&self, kind: Kind) -> Envelope {
        Envelope {
            kind,
            id: self.id,
            correlation: self.correlation,
            deadline_ms: None,
            trace: None,
        }
    }

    /// Parse the envelope at the front of `buf`; returns it and the payload after it.
    pub fn parse(buf: &[u8]) -> Result<(Envelope, &[u8]), EnvelopeError> {
        let (&b0, rest) = buf.split_first().ok_or(EnvelopeError::Truncated)?;
        let flags = *rest.first().ok_or(EnvelopeError::Truncated)?;
        let (version, kind_code) = (b0 >> 4, b0 & 0x0F);
        // The parts every version keeps: enough to answer an ask.
        let reply_to = || {
            (kind_code == Kind::Ask.code())
                .then(|| Some((u32_at(buf, 2)?, u64_at(buf, 6)?)))
                .flatten()
        };
        if version != VERSION {
            return Err(EnvelopeError::Version {
                version,
                reply_to: reply_to(),
            });
        }
        let kind = Kind::from_code(kind_code).ok_or(EnvelopeError::BadKind(kind_code))?;
        let unknown = flags & FLAGS_MUST_UNDERSTAND;
        if unknown != 0 {
            return Err(EnvelopeError::MustUnderstand {
                flags: unknown,
                reply_to: reply_to(),
            });
        }
        let id = u32_at(buf, 2).ok_or(EnvelopeError::Truncated)?;
        let mut at = 6;
        let correlation = if kind.correlated() {
            at += 8;
            u64_at(buf, 6).ok_or(EnvelopeError::Truncated)?
        } else {
            0
        };
        let deadline_ms = if flags & FLAG_DEADLINE != 0 {
            let d = u32_at(buf, at).ok_or(EnvelopeError::Truncated)?;
            at += 4;
            Some(d)
        } else {
            None
        };
        let trace = if flags & FLAG_TRACE != 0 {
            let t = buf
                .get(at..at + TRACE_LEN)
                .ok_or(EnvelopeError::Truncated)?;
            at += TRACE_LEN;
            // Read as version 0 whatever its version byte (W3C: a newer version keeps the
            // fields of version 0 in front); re-emitted as version 0.
            Some(TraceContext {
                trace_id: t[1..17].try_into().unwrap_or_default(),
                span_id: t[17..25].try_into().unwrap_or_default(),
                flags: t[25],
            })
        } else {
            None
        };
        Ok((
            Envelope {
                kind,
                id,
                correlation,
                deadline_ms,
                trace,
            },
            &buf[at..],
        ))
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn len(&self) -> usize {
        6 + if self.kind.correlated() { 8 } else { 0 }
            + if self.deadline_ms.is_some() { 4 } else { 0 }
            + if self.trace.is_some() { TRACE_LEN } else { 0 }
    }

    /// Never empty; for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Append the envelope to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let mut flags = 0;
        if self.deadline_ms.is_some() {
            flags |= FLAG_DEADLINE;
        }
        if self.trace.is_some() {
            flags |= FLAG_TRACE;
        }
        out.push(VERSION << 4 | self.kind.code());
        out.push(flags);
        out.extend_from_slice(&self.id.to_be_bytes());
        if self.kind.correlated() {
            out.extend_from_slice(&self.correlation.to_be_bytes());
        }
        if let Some(d) = self.deadline_ms {
            out.extend_from_slice(&d.to_be_bytes());
        }
        if let Some(t) = self.trace {
            out.push(0);
            out.extend_from_slice(&t.trace_id);
            out.extend_from_slice(&t.span_id);
            out.push(t.flags);
        }
    }
}

/// Why an ask failed on the serving side: the first byte of an error reply's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The service has no handler for the message id.
    UnknownMessage,
    /// The payload did not decode as the message type of that id.
    Undecodable,
    /// An envelope version the service does not speak.
    Version,
    /// A must-understand flag the service does not know.
    MustUnderstand,
    /// The handler panicked; the service stopped.
    Panicked,
    /// The service stopped before it handled the ask.
    ServiceGone,
    /// The handler's reply could not be encoded, or was too large.
    ReplyFailed,
    /// A code this node does not know (a newer peer).
    Other(u8),
}

impl ErrorCode {
    /// The wire byte.
    pub fn code(self) -> u8 {
        match self {
            ErrorCode::UnknownMessage => 1,
            ErrorCode::Undecodable => 2,
            ErrorCode::Version => 3,
            ErrorCode::MustUnderstand => 4,
            ErrorCode::Panicked => 5,
            ErrorCode::ServiceGone => 6,
            ErrorCode::ReplyFailed => 7,
            ErrorCode::Other(c) => c,
        }
    }

    /// From the wire byte.
    pub fn from_code(c: u8) -> ErrorCode {
        match c {
            1 => ErrorCode::UnknownMessage,
            2 => ErrorCode::Undecodable,
            3 => ErrorCode::Version,
            4 => ErrorCode::MustUnderstand,
            5 => ErrorCode::Panicked,
            6 => ErrorCode::ServiceGone,
            7 => ErrorCode::ReplyFailed,
            c => ErrorCode::Other(c),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::UnknownMessage => f.write_str("unknown message id"),
            ErrorCode::Undecodable => f.write_str("undecodable message"),
            ErrorCode::Version => f.write_str("unsupported envelope version"),
            ErrorCode::MustUnderstand => f.write_str("unknown must-understand flag"),
            ErrorCode::Panicked => f.write_str("handler panicked"),
            ErrorCode::ServiceGone => f.write_str("service gone"),
            ErrorCode::ReplyFailed => f.write_str("reply could not be encoded"),
            ErrorCode::Other(c) => write!(f, "error code {c}"),
        }
    }
}

/// The payload of an error reply: the code byte and a UTF-8 detail (cut to `max_detail` bytes
/// at a character boundary).
pub fn error_payload(code: ErrorCode, detail: &str, max_detail: usize, out: &mut Vec<u8>) {
    out.push(code.code());
    let mut end = detail.len().min(max_detail);
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&detail.as_bytes()[..end]);
}

/// Parse an error reply's payload (an empty one is `Other(0)`; bad UTF-8 is replaced).
pub fn parse_error_payload(p: &[u8]) -> (ErrorCode, String) {
    match p.split_first() {
        Some((&c, rest)) => (
            ErrorCode::from_code(c),
            String::from_utf8_lossy(rest).into_owned(),
        ),
        None => (ErrorCode::Other(0), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn envelope_tell_is_six_bytes_and_ask_fourteen() {
        let mut v = Vec::new();
        Envelope::tell(7).emit(&mut v);
        assert_eq!(v, [0x11, 0, 0, 0, 0, 7]);
        v.clear();
        Envelope::ask(7, 0x0102030405060708).emit(&mut v);
        assert_eq!(v, [0x12, 0, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn envelope_parse_refuses_other_version_but_names_the_ask_to_answer() {
        let mut v = Vec::new();
        Envelope::ask(9, 42).emit(&mut v);
        v[0] = 0x22;
        let e = Envelope::parse(&v).unwrap_err();
        assert_eq!(e.reply_to(), Some((9, 42)));
        assert_eq!(e.code(), ErrorCode::Version);
        v[0] = 0x21; // a tell of version 2: nothing to answer
        assert_eq!(Envelope::parse(&v).unwrap_err().reply_to(), None);
    }

    #[test]
    fn envelope_parse_refuses_unknown_must_understand_flag_and_ignores_optional_ones() {
        let mut v = Vec::new();
        Envelope::ask(3, 5).emit(&mut v);
        v[1] = 0x10;
        let e = Envelope::parse(&v).unwrap_err();
        assert_eq!(e.code(), ErrorCode::MustUnderstand);
        assert_eq!(e.reply_to(), Some((3, 5)));
        v[1] = 0x04;
        let (env, rest) = Envelope::parse(&v).expect("optional flag ignored");
        assert_eq!((env.id, env.correlation, rest.len()), (3, 5, 0));
    }

    #[test]
    fn envelope_parse_refuses_truncated_and_unknown_kind() {
        assert_eq!(Envelope::parse(&[]), Err(EnvelopeError::Truncated));
        assert_eq!(
            Envelope::parse(&[0x12, 0, 0]),
            Err(EnvelopeError::Truncated)
        );
        assert_eq!(
            Envelope::parse(&[0x19, 0, 0, 0, 0, 0]),
            Err(EnvelopeError::BadKind(9))
        );
        let (ack, rest) = Envelope::parse(&[0x15, 0, 0, 0, 0, 64]).expect("ack");
        assert_eq!((ack, rest.len()), (Envelope::ack(64), 0));
        // Flags announce a deadline that is not there.
        assert_eq!(
            Envelope::parse(&[0x11, 1, 0, 0, 0, 0]),
            Err(EnvelopeError::Truncated)
        );
    }

    #[test]
    fn error_payload_cuts_detail_at_a_char_boundary() {
        let mut v = Vec::new();
        error_payload(ErrorCode::Panicked, "héllo", 2, &mut v);
        assert_eq!(v, [5, b'h']);
        assert_eq!(
            parse_error_payload(&v),
            (ErrorCode::Panicked, "h".to_string())
        );
        assert_eq!(parse_error_payload(&[]).0, ErrorCode::Other(0));
    }

    fn any_envelope() -> impl Strategy<Value = Envelope> {
        (
            prop_oneof![
                Just(Kind::Tell),
                Just(Kind::Ask),
                Just(Kind::Reply),
                Just(Kind::Error),
                Just(Kind::Ack)
            ],
            any::<u32>(),
            any::<u64>(),
            proptest::option::of(any::<u32>()),
            proptest::option::of((any::<[u8; 16]>(), any::<[u8; 8]>(), any::<u8>())),
        )
            .prop_map(|(kind, id, c, deadline_ms, t)| Envelope {
                kind,
                id,
                correlation: if kind.correlated() { c } else { 0 },
                deadline_ms,
                trace: t.map(|(trace_id, span_id, flags)| TraceContext {
                    trace_id,
                    span_id,
                    flags,
                }),
            })
    }

    proptest! {
        #[test]
        fn envelope_emit_parse_round_trips_with_payload(
            env in any_envelope(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut v = Vec::new();
            env.emit(&mut v);
            prop_assert_eq!(v.len(), env.len());
            prop_assert!(v.len() <= MAX_LEN);
            v.extend_from_slice(&payload);
            let (back, rest) = Envelope::parse(&v).expect("parse");
            prop_assert_eq!(back, env);
            prop_assert_eq!(rest, &payload[..]);
        }

        #[test]
        fn envelope_parse_never_panics_and_stays_in_bounds(
            bytes in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            if let Ok((env, rest)) = Envelope::parse(&bytes) {
                prop_assert_eq!(env.len() + rest.len(), bytes.len());
            }
        }
    }
}
