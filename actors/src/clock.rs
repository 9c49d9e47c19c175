//! The node's clock: tokio's, so that a test that pauses it (`tokio::time::pause()`, with
//! tokio's `test-util`) runs the node in virtual time. The only place the actors read the time.

use std::time::Instant;

/// The time as the actors see it.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
