//! The `net` thread: one per virtio-net device (`virtio-net<N>`), moving frames between its
//! rx/tx queues and its TAP.
//!
//! It waits in epoll_wait on the tx/rx ioeventfds, a state eventfd, a stop eventfd and the
//! TAP; reads/writes the TAP with read/write (already in the common list, any fd: eventfds
//! need them too); adds and removes the TAP in its epoll set with epoll_ctl (it stops polling
//! the TAP while the guest has no rx buffer). The TAP was opened and configured (TUNSETIFF,
//! TUNSETVNETHDRSZ) by the main thread: no open, no socket, no ioctl here.

use crate::rule::SyscallRule;
use crate::{FilterContext, KindSpec};

/// The net kind: name, rules; nothing argument-checked is hot.
pub(crate) const SPEC: KindSpec = KindSpec {
    name: "net",
    rules,
    hot: &[],
};

#[rustfmt::skip]
fn rules(_ctx: &FilterContext) -> Vec<SyscallRule> {
    let mut rules = crate::common::rules(&[]);
    rules.extend([
        SyscallRule::any("epoll_wait", libc::SYS_epoll_wait, "the device thread's event loop (glibc epoll_wait)"),
        SyscallRule::any("epoll_ctl", libc::SYS_epoll_ctl, "stop/resume polling the TAP as rx buffers run out/come back"),
    ]);
    rules
}
