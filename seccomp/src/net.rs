//! The `net` thread: one per virtio-net device (`virtio-net<N>`), moving frames between its
//! rx/tx queues and its TAP.
//!
//! It waits in epoll_wait on the tx/rx ioeventfds, a state eventfd, a stop eventfd and the
//! TAP; reads/writes the TAP with readv/writev straight on guest buffers (pinned to the TAP;
//! read/write stay for its eventfds); adds and removes the TAP in its epoll set with epoll_ctl (it stops polling
//! the TAP while the guest has no rx buffer). The TAP was opened and configured (TUNSETIFF,
//! TUNSETVNETHDRSZ, TUNSETOFFLOAD) by the main thread: no open, no socket, no ioctl here. With `bw=` it
//! arms and reads its rx and tx rate-limit timerfds (made by the main thread; polled from the
//! start, so no epoll_ctl for them). As a device process (`--isolate devices`) it also
//! serves its proxy socket (see `blk.rs`, `DEVICE_READS`).

use crate::blk::{device_io, epoll_wait, timerfd_settime};
use crate::rule::{ArgCond, SyscallRule};
use crate::KindSpec;

/// The net kind: name, rules; readv/writev (TAP), read (queue eventfd) and write (irqfd)
/// are hot.
pub(crate) const SPEC: KindSpec = KindSpec {
    name: "net",
    rules,
    hot: &[
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_read,
        libc::SYS_write,
    ],
};

#[rustfmt::skip]
fn rules() -> Vec<SyscallRule> {
    let io = device_io(&["queue", "timer", "state", "stop", "proxy", "hook"], &["irq", "notify", "proxy", "window"]);
    let mut rules = crate::common::rules(&[], io);
    rules.extend([
        epoll_wait(),
        crate::blk::hello(),
        timerfd_settime(),
        SyscallRule::on_fds("readv", libc::SYS_readv, "rx: one frame from the TAP straight into the guest's buffers (and the device's scratch area)", 0, &["tap"]),
        SyscallRule::on_fds("writev", libc::SYS_writev, "tx: one frame to the TAP, the device's header then the guest's buffers", 0, &["tap"]),
        SyscallRule::when("epoll_ctl", libc::SYS_epoll_ctl, "its own epoll instance, the TAP only: stop/resume polling it as rx buffers run out/come back",
            vec![ArgCond::fd(0, "epoll"), ArgCond::fd(2, "tap")]),
    ]);
    rules
}
