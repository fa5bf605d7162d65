//! vmm crate (work in progress).
