//! The words of `tipcctl`'s commands and of the node's output lines: parsing `TYPE:INST`,
//! `TYPE:LOWER:UPPER` and `NODE:PORT`; formatting socket addresses (`sock:0xNODE:PORT`), error
//! and close-reason names, and payloads as text.

use super::proto::GroupAction;
use std::fmt::Write as _;
use tipc_actors::addr::{ServiceRange, SocketAddr, RESERVED_TYPES};
use tipc_actors::sock::conn::ConnError;
use tipc_actors::socket::BindError;
use tipc_transport::wire::ErrorCode;

/// Parse `TYPE:INST` or `TYPE:LOWER:UPPER` into a range (an instance is the range `[I, I]`).
pub fn parse_binding(s: &str) -> Result<ServiceRange, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |p: &str| {
        p.parse::<u32>()
            .map_err(|_| format!("invalid binding '{s}': expected TYPE:INST or TYPE:LOWER:UPPER"))
    };
    let (type_, lower, upper) = match parts.as_slice() {
        [t, i] => (num(t)?, num(i)?, num(i)?),
        [t, l, u] => (num(t)?, num(l)?, num(u)?),
        _ => {
            return Err(format!(
                "invalid binding '{s}': expected TYPE:INST or TYPE:LOWER:UPPER"
            ))
        }
    };
    ServiceRange::new(type_, lower, upper)
        .map_err(|_| format!("invalid binding '{s}': lower > upper"))
}

/// The range a `listen` request's `(type, lower, upper)` binds, refused as `bind` refuses it:
/// a reserved type first, then `lower > upper`.
pub(crate) fn bind_range(
    (type_, lower, upper): (u32, u32, u32),
) -> Result<ServiceRange, BindError> {
    ServiceRange::new(type_, lower, upper).map_err(|e| {
        if type_ < RESERVED_TYPES {
            BindError::Reserved
        } else {
            e.into()
        }
    })
}

/// `(type, lower, upper)` written as a [`ServiceRange`]'s `Debug` (also for `lower > upper`,
/// which no `ServiceRange` holds), for the `bind ...` error line.
pub(crate) fn range_debug((type_, lower, upper): (u32, u32, u32)) -> String {
    format!("ServiceRange {{ type_: {type_}, lower: {lower}, upper: {upper} }}")
}

/// Parse `NODE:PORT` (node in hex, with or without `0x`, or as `sock:0xNODE:PORT`).
pub fn parse_socket(s: &str) -> Result<(u32, u32), String> {
    let t = s.strip_prefix("sock:").unwrap_or(s);
    let (n, p) = t
        .split_once(':')
        .ok_or_else(|| format!("invalid socket '{s}': expected NODE:PORT (node in hex)"))?;
    let n = n.trim_start_matches("0x");
    let node = u32::from_str_radix(n, 16).map_err(|_| format!("invalid node '{n}' in '{s}'"))?;
    let port = p
        .parse::<u32>()
        .map_err(|_| format!("invalid port '{p}' in '{s}'"))?;
    Ok((node, port))
}

/// `sock:0xNODE:PORT`, as the kernel peer's helper prints socket addresses.
pub fn sock_str(a: SocketAddr) -> String {
    format!("sock:0x{:08x}:{}", a.node, a.port)
}

/// The error names printed in `RETURNED err=NAME`.
pub fn err_name(e: ErrorCode) -> &'static str {
    match e {
        ErrorCode::Ok => "ok",
        ErrorCode::NoName => "no_name",
        ErrorCode::NoPort => "no_port",
        ErrorCode::NoNode => "no_node",
        ErrorCode::Overload => "overload",
        ErrorCode::ConnShutdown => "conn_shutdown",
    }
}

/// A connection error as the text of `tipcctl`'s error lines. This keeps the words these
/// lines had before [`ErrorCode`] had a `Display`: a refusal reads `connection refused
/// (NoPort)`, the code's Rust name, where `ConnError`'s own `Display` now says `no port`.
pub fn conn_error_text(e: &ConnError) -> String {
    match e {
        ConnError::Refused(code) => format!("connection refused ({code:?})"),
        e => e.to_string(),
    }
}

/// A connection error as a short stable word for `CLOSED reason=` (`NoNode` -> `no_node`).
pub fn reason(e: &ConnError) -> String {
    let s = format!("{e:?}");
    let word: String = s
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .collect::<String>();
    let mut out = String::new();
    for (i, c) in word.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Payload as text: UTF-8 with control characters, backslash and invalid bytes escaped.
pub fn text(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len());
    for chunk in data.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => s.push_str("\\n"),
                '\r' => s.push_str("\\r"),
                '\t' => s.push_str("\\t"),
                '\\' => s.push_str("\\\\"),
                c if c.is_control() => {
                    let _ = write!(s, "\\x{:02x}", c as u32);
                }
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

/// Parse the words after `group send T:I [options]`: `bcast DATA`, `mcast INST DATA`,
/// `anycast INST DATA`, `ucast sock:0xNODE:PORT DATA`, any number, in order.
pub fn parse_group_actions(words: &[String]) -> Result<Vec<GroupAction>, String> {
    let mut v = Vec::new();
    let mut w = words.iter();
    let inst = |s: Option<&String>, what: &str| -> Result<u32, String> {
        let s = s.ok_or_else(|| format!("{what} needs INST DATA"))?;
        s.parse::<u32>()
            .map_err(|_| format!("{what}: invalid instance '{s}'"))
    };
    while let Some(a) = w.next() {
        let data = |d: Option<&String>| -> Result<Vec<u8>, String> {
            d.map(|d| d.clone().into_bytes())
                .ok_or_else(|| format!("{a} needs DATA"))
        };
        v.push(match a.as_str() {
            "bcast" => GroupAction::Bcast(data(w.next())?),
            "mcast" => GroupAction::Mcast(inst(w.next(), a)?, data(w.next())?),
            "anycast" => GroupAction::Anycast(inst(w.next(), a)?, data(w.next())?),
            "ucast" => {
                let s = w.next().ok_or("ucast needs sock:0xNODE:PORT DATA")?;
                let (n, p) = parse_socket(s)?;
                GroupAction::Ucast(n, p, data(w.next())?)
            }
            other => {
                return Err(format!(
                    "unknown action '{other}': expected bcast, mcast, anycast or ucast"
                ))
            }
        });
    }
    if v.is_empty() {
        return Err("group send needs at least one ACTION".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_binding_accepts_instance_and_range_and_rejects_bad_input() {
        assert_eq!(
            parse_binding("1000:5").unwrap(),
            ServiceRange::single(1000, 5)
        );
        assert_eq!(
            parse_binding("1000:1:9").unwrap(),
            ServiceRange::new(1000, 1, 9).unwrap()
        );
        assert!(parse_binding("1000").is_err());
        assert!(parse_binding("1000:9:1").is_err());
        assert!(parse_binding("a:1").is_err());
    }

    #[test]
    fn bind_range_refuses_as_bind_does_and_range_debug_matches_debug() {
        let r = ServiceRange::new(1000, 1, 9).unwrap();
        assert_eq!(bind_range((1000, 1, 9)), Ok(r));
        assert_eq!(range_debug((1000, 1, 9)), format!("{r:?}"));
        assert_eq!(bind_range((1, 9, 1)), Err(BindError::Reserved));
        assert_eq!(
            bind_range((1000, 9, 1)).map_err(|e| e.to_string()),
            Err("binding refused: invalid range: lower 9 > upper 1".to_string())
        );
        assert_eq!(
            range_debug((1000, 9, 1)),
            "ServiceRange { type_: 1000, lower: 9, upper: 1 }"
        );
    }

    #[test]
    fn parse_socket_accepts_hex_node_forms() {
        assert_eq!(parse_socket("0x61000000:7").unwrap(), (0x6100_0000, 7));
        assert_eq!(parse_socket("61000000:7").unwrap(), (0x6100_0000, 7));
        assert_eq!(parse_socket("sock:0x61000000:7").unwrap(), (0x6100_0000, 7));
        assert!(parse_socket("x:7").is_err());
        assert!(parse_socket("61000000").is_err());
    }

    #[test]
    fn reason_is_the_snake_case_variant_name() {
        assert_eq!(reason(&ConnError::NoNode), "no_node");
        assert_eq!(reason(&ConnError::PeerShutdown), "peer_shutdown");
        assert_eq!(reason(&ConnError::Refused(ErrorCode::NoPort)), "refused");
        assert_eq!(
            conn_error_text(&ConnError::Refused(ErrorCode::NoPort)),
            "connection refused (NoPort)"
        );
        assert_eq!(
            conn_error_text(&ConnError::Refused(ErrorCode::ConnShutdown)),
            "connection refused (ConnShutdown)"
        );
        assert_eq!(conn_error_text(&ConnError::NoNode), "peer node lost");
    }

    #[test]
    fn sock_str_and_err_name_are_the_kernel_helper_words() {
        let a = SocketAddr {
            node: 0x6100_0000,
            port: 7,
        };
        assert_eq!(sock_str(a), "sock:0x61000000:7");
        assert_eq!(parse_socket(&sock_str(a)).unwrap(), (a.node, a.port));
        assert_eq!(err_name(ErrorCode::NoName), "no_name");
    }

    #[test]
    fn text_escapes_control_and_invalid_bytes() {
        assert_eq!(text(b"hi\nthere\\"), "hi\\nthere\\\\");
        assert_eq!(text(&[0x41, 0xff, 0x00]), "A\\xff\\x00");
    }
}
