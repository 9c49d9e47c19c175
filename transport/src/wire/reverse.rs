//! Returning a message to its sender and sorting delivered messages into input queues
//! (kernel `msg.c: tipc_msg_reverse`, `link.c: tipc_data_input`), spec §9.2, §4.1.

use super::{field, user, DataType, ErrorCode, Header, BASIC_H_SIZE, SHORT_H_SIZE};
use crate::NodeAddr;
use bytes::BytesMut;

/// At most this many data bytes travel back in a returned message (`MAX_FORWARD_SIZE`, §9.2).
pub const MAX_FORWARD_SIZE: usize = 1024;

/// The returned copy of a rejected message (`tipc_msg_reverse`, §9.2), addressed back to the
/// sender: send it to its `destnode` (the original `prevnode`).
///
/// `None` if the message is malformed, already carries an error code, or is `dest_droppable`
/// (the kernel then drops it silently). Otherwise the copy keeps the original header, widened
/// from 24 to 32 bytes; keeps at most [`MAX_FORWARD_SIZE`] data bytes (none for a SYN rejected
/// with `OVERLOAD`); has `errcode = err`, `non_seq = 0`, origport and destport swapped,
/// `destnode` = original prevnode and `prevnode = orignode = own_node`.
pub fn reverse(msg: &[u8], err: ErrorCode, own_node: NodeAddr) -> Option<BytesMut> {
    let h = Header::new_checked(msg).ok()?;
    if h.flag(field::DEST_DROPPABLE) || h.errcode() != 0 {
        return None;
    }
    let ohlen = h.header_len();
    let hlen = if ohlen == SHORT_H_SIZE {
        BASIC_H_SIZE
    } else {
        ohlen
    };
    let mut dlen = h.payload().len().min(MAX_FORWARD_SIZE);
    if h.flag(field::SYN) && err == ErrorCode::Overload {
        dlen = 0;
    }
    let mut buf = BytesMut::zeroed(hlen + dlen);
    buf[..ohlen].copy_from_slice(msg.get(..ohlen)?);
    buf[hlen..].copy_from_slice(h.payload().get(..dlen)?);
    let mut r = Header::new_unchecked(&mut buf[..]);
    r.set(field::HSIZE, (hlen / 4) as u32);
    r.set(field::ERRCODE, err as u32);
    r.set_flag(field::NON_SEQ, false);
    r.set(field::ORIGPORT, h.destport());
    r.set(field::DESTPORT, h.origport());
    r.set(field::DESTNODE, h.prevnode());
    r.set(field::PREVNODE, own_node);
    r.set(field::ORIGNODE, own_node);
    r.set(field::SIZE, (hlen + dlen) as u32);
    Some(buf)
}

/// The input queue a message delivered by a link belongs to (`tipc_data_input`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputQueue {
    /// `inputq`, for `tipc_sk_rcv`: unicast data (connection, named, direct) and CONN_MANAGER.
    Sockets,
    /// `mc_inputq`, for `tipc_sk_mcast_rcv`: multicast and group data, GROUP_PROTOCOL.
    Mcast,
    /// `namedq`, for `tipc_named_rcv`: NAME_DISTRIBUTOR.
    Names,
    /// `tipc_crypto_msg_rcv`: MSG_CRYPTO (a key distribution, §15.5).
    Crypto,
}

/// Which input queue a delivered message goes to; `None` for a user no queue takes (the
/// kernel drops it: "illegal msg type"). A link never delivers bundles, fragments, tunnel
/// or broadcast-protocol messages: it opens or consumes them itself.
pub fn input_queue(h: &Header<&[u8]>) -> Option<InputQueue> {
    match h.user() {
        user::LOW..=user::CRITICAL => {
            let mcast =
                DataType::from_u8(h.mtype()).is_ok_and(|t| t == DataType::Mcast || t.is_group());
            Some(if mcast {
                InputQueue::Mcast
            } else {
                InputQueue::Sockets
            })
        }
        user::CONN_MANAGER => Some(InputQueue::Sockets),
        user::GROUP_PROTOCOL => Some(InputQueue::Mcast),
        user::NAME_DISTRIBUTOR => Some(InputQueue::Names),
        user::MSG_CRYPTO => Some(InputQueue::Crypto),
        _ => None,
    }
}
