//! The `blk` thread: one per virtio-blk disk (`virtio-blk<N>`), serving its request queue.
//!
//! It waits in epoll_wait on its queue's ioeventfd, a state eventfd and a stop eventfd, reads
//! them, copies between guest memory (mmapped) and its disk with pread64/pwrite64 (Rust
//! `FileExt::read_exact_at`/`write_all_at`), flushes with fdatasync (`File::sync_data`), and
//! writes its irqfd. File I/O is pinned to the disk's fd when it is known. It opens nothing:
//! the disk was opened by the main thread. With `bw=`/`ops=` it also arms (timerfd_settime)
//! and reads its rate-limit timerfd, created by the main thread; without, the `timer` role
//! has no fd and those rules are gone.

use crate::common::Io;
use crate::rule::{ArgCond, SyscallRule};
use crate::KindSpec;

/// The blk kind: name, rules; read (queue eventfd), write (irqfd) and pread64/pwrite64
/// are the per-request calls.
pub(crate) const SPEC: KindSpec = KindSpec {
    name: "blk",
    rules,
    hot: &[
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_epoll_wait,
        libc::SYS_pread64,
        libc::SYS_pwrite64,
    ],
};

/// What a device thread reads and writes, by role: typically its queue, state and stop
/// eventfds; its irqfd and its own queue eventfds (re-queue); and a host fd (TAP).
pub(crate) fn device_io<'a>(read: &'a [&'static str], write: &'a [&'static str]) -> Io<'a> {
    Io { read, write }
}

/// Reads and writes of a device thread without a pollable host fd (blk, rng). As a device
/// process (`--isolate devices`) it also reads register requests from its proxy socket and
/// writes the replies, and writes its window's eventfds (state change, trapped
/// QueueNotify); a device thread has no fd in those roles.
pub(crate) const DEVICE_READS: &[&str] = &["queue", "state", "stop", "proxy", "hook"];
/// See [`DEVICE_READS`].
pub(crate) const DEVICE_WRITES: &[&str] = &["irq", "notify", "proxy", "window"];

/// Reads of a blk thread: [`DEVICE_READS`] and its rate-limit timerfd.
const BLK_READS: &[&str] = &["queue", "timer", "state", "stop", "proxy", "hook"];

/// `timerfd_settime` on the device's own rate-limit timerfd, relative (flags 0).
pub(crate) fn timerfd_settime() -> SyscallRule {
    SyscallRule::when(
        "timerfd_settime",
        libc::SYS_timerfd_settime,
        "rate limit (bw=/ops=): arm this device's own timerfd (relative) for when the next request fits",
        vec![ArgCond::fd(0, "timer"), ArgCond::eq(1, 0)],
    )
}

/// `sendmsg` of the hello carrying a device process's listener (`--seccomp log` only: no
/// fd has the role otherwise, so the rule is left out).
pub(crate) fn hello() -> SyscallRule {
    SyscallRule::on_fds(
        "sendmsg",
        libc::SYS_sendmsg,
        "--isolate devices, --seccomp log: the hello handing the VMM's supervisor this process's seccomp listener (SCM_RIGHTS), on its proxy socket",
        0,
        &["hello"],
    )
}

/// `epoll_wait` on the thread's own epoll instance.
pub(crate) fn epoll_wait() -> SyscallRule {
    SyscallRule::on_fds(
        "epoll_wait",
        libc::SYS_epoll_wait,
        "the device thread's event loop (glibc epoll_wait), on its own epoll instance",
        0,
        &["epoll"],
    )
}

#[rustfmt::skip]
fn rules() -> Vec<SyscallRule> {
    let on_disk = |name, nr, reason| SyscallRule::on_fds(name, nr, reason, 0, &["disk"]);
    let mut rules = crate::common::rules(&[], device_io(BLK_READS, DEVICE_WRITES));
    rules.extend([
        epoll_wait(),
        hello(),
        timerfd_settime(),
        on_disk("pread64", libc::SYS_pread64, "IN requests: read sectors of this disk only"),
        on_disk("pwrite64", libc::SYS_pwrite64, "OUT requests: write sectors of this disk only (never on a read-only disk: O_RDONLY)"),
        on_disk("fdatasync", libc::SYS_fdatasync, "FLUSH requests (File::sync_data) on this disk only"),
        on_disk("fsync", libc::SYS_fsync, "FLUSH fallback (File::sync_all) on this disk only"),
    ]);
    rules
}
