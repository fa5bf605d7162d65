//! The `rng` thread: the virtio-rng device (`virtio-rng0`), filling guest buffers with random
//! bytes.
//!
//! It waits in epoll_wait on its queue's ioeventfd, a state eventfd and a stop eventfd, and
//! fills buffers with getrandom (already in the common list) before writing its irqfd. It
//! opens no file (no /dev/urandom) and touches no other fd.

use crate::blk::{device_io, epoll_wait, hello, DEVICE_READS, DEVICE_WRITES};
use crate::rule::SyscallRule;
use crate::KindSpec;

/// The rng kind: name, rules; read (queue eventfd) and write (irqfd) are hot.
pub(crate) const SPEC: KindSpec = KindSpec {
    name: "rng",
    rules,
    hot: &[libc::SYS_read, libc::SYS_write],
};

fn rules() -> Vec<SyscallRule> {
    let mut rules = crate::common::rules(&[], device_io(DEVICE_READS, DEVICE_WRITES));
    rules.push(epoll_wait());
    rules.push(hello());
    rules
}
