//! seccomp crate (work in progress).
