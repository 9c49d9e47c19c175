//! The service layer: typed messages between actors on TIPC service addresses.
//!
//! Modules, each importing only those above it: [`envelope`] (the bytes in front of every
//! message), [`message`] (the [`TipcMessage`] trait and the payload encoding), [`client`]
//! ([`ServiceRef`]: tell, ask; the node's [`Clients`]), [`group`] ([`GroupRef`]: typed tells
//! to a group), [`server`] (the [`Service`] trait that
//! `#[tipc_service]` implements and the actor running it); [`watch`] (service up/down events)
//! beside them.

pub mod client;
pub mod envelope;
pub mod group;
pub mod message;
pub mod server;
pub mod watch;

pub use client::{AskError, ClientStats, Clients, ServiceRef, Target, TellError, TryTellError};
pub use envelope::ErrorCode;
pub use group::{GroupRef, GroupTellError, Member};
pub use message::{TipcMessage, Wire};
pub use server::{
    Binding, Ctx, GroupOpts, MemberEvent, Outcome, Raw, ReplyTo, Request, Service, ServiceHandle,
    ServiceStats, StartError,
};
pub use watch::{ServiceEvent, Watch, WatchError};
