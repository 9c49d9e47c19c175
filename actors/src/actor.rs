//! The node's actors (drivers, quinn's shape): each owns the timers and wake-ups of sans-IO
//! cores and carries out what they decide. They reach each other only through the handles of
//! the node context ([`crate::ctx`], [`crate::msg`]), never by type.
//!
//! * [`bearer`] (kernel `bearer.c` + `discover.c` glue): one media and its discoverer;
//! * [`peer`] (kernel `node.c`): one per remote node, owning its links;
//! * [`name_table`] (kernel `name_table.c`, `name_distr.c`, `topsrv.c`): name distribution
//!   and service tracking;
//! * [`conn`] (kernel `socket.c`, connection half): one per connection socket;
//! * [`group`] (kernel `socket.c`, group half): a group member's driver (no timers, so no
//!   actix actor: a port, a send path and a binding-event task).

pub mod bearer;
pub mod conn;
pub mod crypto;
pub mod group;
pub mod name_table;
pub mod peer;
