//! The `blk` thread: one per virtio-blk disk (`virtio-blk<N>`), serving its request queue.
//!
//! It waits in epoll_wait on its queue's ioeventfd, a state eventfd and a stop eventfd, reads
//! them, copies between guest memory (mmapped) and its disk with pread64/pwrite64 (Rust
//! `FileExt::read_exact_at`/`write_all_at`), flushes with fdatasync (`File::sync_data`), and
//! writes its irqfd. File I/O is pinned to the disk's fd when it is known. It opens nothing:
//! the disk was opened by the main thread.

use crate::rule::{ArgCond, ArgRule, SyscallRule};
use crate::{FilterContext, KindSpec};

/// The blk kind: name, rules; pread64/pwrite64 are the per-request calls.
pub(crate) const SPEC: KindSpec = KindSpec {
    name: "blk",
    rules,
    hot: &[libc::SYS_pread64, libc::SYS_pwrite64],
};

fn on_disk(ctx: &FilterContext) -> ArgRule {
    match ctx.disk_fd {
        Some(fd) => ArgRule::Match(vec![vec![ArgCond::eq(0, u64::from(fd as u32))]]),
        None => ArgRule::Any,
    }
}

#[rustfmt::skip]
fn rules(ctx: &FilterContext) -> Vec<SyscallRule> {
    let mut rules = crate::common::rules(&[]);
    rules.extend([
        SyscallRule::any("epoll_wait", libc::SYS_epoll_wait, "the device thread's event loop (glibc epoll_wait)"),
        SyscallRule::new("pread64", libc::SYS_pread64, "IN requests: read sectors of this disk only", on_disk(ctx)),
        SyscallRule::new("pwrite64", libc::SYS_pwrite64, "OUT requests: write sectors of this disk only (never on a read-only disk: O_RDONLY)", on_disk(ctx)),
        SyscallRule::new("fdatasync", libc::SYS_fdatasync, "FLUSH requests (File::sync_data) on this disk only", on_disk(ctx)),
        SyscallRule::new("fsync", libc::SYS_fsync, "FLUSH fallback (File::sync_all) on this disk only", on_disk(ctx)),
    ]);
    rules
}
