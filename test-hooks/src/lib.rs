//! Test-only and empty: a workspace member whose one job is to depend on `vmm` with its
//! `test-hooks` feature, so that `cargo test --workspace` (the README's and `.ci/run`'s
//! test command) builds the `microvm` binary with the hook device on port 0x510, while
//! `cargo build` and `cargo bench --bench bench` do not (see its Cargo.toml).
