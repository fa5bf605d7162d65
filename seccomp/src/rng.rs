//! The `rng` thread: the virtio-rng device (`virtio-rng0`), filling guest buffers with random
//! bytes.
//!
//! It waits in epoll_wait on its queue's ioeventfd, a state eventfd and a stop eventfd, and
//! fills buffers with getrandom (already in the common list) before writing its irqfd. It
//! opens no file (no /dev/urandom) and touches no other fd.

use crate::rule::SyscallRule;
use crate::{FilterContext, KindSpec};

/// The rng kind: name, rules; nothing argument-checked is hot.
pub(crate) const SPEC: KindSpec = KindSpec {
    name: "rng",
    rules,
    hot: &[],
};

fn rules(_ctx: &FilterContext) -> Vec<SyscallRule> {
    let mut rules = crate::common::rules(&[]);
    rules.push(SyscallRule::any(
        "epoll_wait",
        libc::SYS_epoll_wait,
        "the device thread's event loop (glibc epoll_wait)",
    ));
    rules
}
