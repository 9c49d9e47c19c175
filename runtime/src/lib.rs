//! # tipc-runtime
//!
//! What users touch: the node builder and configuration, and the binaries `tipc-node` and
//! `tipcctl`. (In progress.)
