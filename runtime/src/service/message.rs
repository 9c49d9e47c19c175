//! Typed messages: the [`TipcMessage`] trait (`#[derive(TipcMessage)]` implements it) and
//! their encoding.
//!
//! A message type has an explicit, stable id (`#[tipc(id = N)]`), never derived from its
//! module path or crate version, so nodes built from different versions of a program keep
//! understanding each other, and a reply type (`#[tipc(reply = T)]`, default `()`).
//!
//! Payloads are MessagePack with field names (`rmp_serde::to_vec_named`), which makes the
//! evolution rules simple and safe in both directions between mixed versions:
//! - add a field only with `#[serde(default)]`: an older sender's message decodes on a newer
//!   node with the default, and a newer sender's message decodes on an older node, which skips
//!   the field it does not know;
//! - never change a field's type or meaning, never reuse a name; rename with
//!   `#[serde(rename = "old")]`; remove a field only once no node reads it;
//! - a message whose meaning changes gets a new id.
//!
//! An undecodable ask is answered with [`ErrorCode::Undecodable`](super::envelope::ErrorCode)
//! within one round trip; an undecodable tell is counted.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A message a service handles: serializable, with a stable id and a reply type.
///
/// Implement it with `#[derive(TipcMessage)]` and `#[tipc(id = N, reply = T)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a TIPC message",
    label = "not a TipcMessage",
    note = "derive it: `#[derive(Serialize, Deserialize, TipcMessage)]` with `#[tipc(id = N)]` (and `#[tipc(reply = T)]` for an ask's reply)"
)]
pub trait TipcMessage: Wire + Send + 'static {
    /// The message's stable id: unique among the messages one service handles.
    const ID: u32;
    /// What an ask of this message returns.
    type Reply: Wire + Send + 'static;
}

/// What can be carried in a message: serde's `Serialize` and `DeserializeOwned` (implemented
/// for every such type). A bound of its own, named from this crate, so that a message or reply
/// type without serde's derives is reported as missing them, not as implementing a sealed trait.
pub trait Wire: Serialize + DeserializeOwned {}

impl<T: Serialize + DeserializeOwned> Wire for T {}

/// Why a value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

/// Append the MessagePack encoding of `value` (with field names) to `out`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    value
        .serialize(&mut rmp_serde::Serializer::new(out).with_struct_map())
        .map_err(|e| CodecError(e.to_string()))
}

/// Decode a value from its MessagePack encoding (the whole of `bytes`).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    rmp_serde::from_slice(bytes).map_err(|e| CodecError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V1 {
        a: u32,
        b: String,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V2 {
        a: u32,
        b: String,
        #[serde(default)]
        c: u64,
    }

    #[test]
    fn message_with_appended_default_field_decodes_both_ways_between_versions() {
        let mut old = Vec::new();
        encode_into(
            &V1 {
                a: 1,
                b: "x".into(),
            },
            &mut old,
        )
        .unwrap();
        let mut new = Vec::new();
        encode_into(
            &V2 {
                a: 1,
                b: "x".into(),
                c: 9,
            },
            &mut new,
        )
        .unwrap();
        assert_eq!(
            decode::<V2>(&old),
            Ok(V2 {
                a: 1,
                b: "x".into(),
                c: 0
            })
        );
        assert_eq!(
            decode::<V1>(&new),
            Ok(V1 {
                a: 1,
                b: "x".into()
            })
        );
    }

    #[test]
    fn decode_refuses_garbage_with_an_error() {
        assert!(decode::<V1>(&[0xc1]).is_err());
        assert!(decode::<V1>(&[]).is_err());
    }
}
