//! arch crate (work in progress).
