//! The service macros' compile errors (issue 13, item 8): each misuse in `tests/ui/*.rs` must
//! fail to compile with the message, and at the place, recorded in its `.stderr` file; the
//! valid uses in `tests/ui/pass/*.rs` must compile and run.
//!
//! The `.stderr` files are rustc's output and change with the compiler version: after a
//! toolchain change, regenerate them with `TRYBUILD=overwrite cargo test -p tipc-runtime --test
//! macro_errors` and read every diff (the message must stay clear, the span on the cause).

#[test]
fn service_macros_reject_each_misuse_with_a_spanned_error_and_accept_valid_uses() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
