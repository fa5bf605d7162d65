//! ioctl request numbers used by the filters.
//!
//! kvm-ioctls keeps its request numbers private, so the KVM ones are re-declared here with the
//! same vmm-sys-util macros and `kvm_bindings::KVMIO`; the TTY ones come from libc.

use kvm_bindings::KVMIO;
use vmm_sys_util::{ioctl_io_nr, ioctl_ior_nr, ioctl_iow_nr};

ioctl_io_nr!(KVM_RUN, KVMIO, 0x80);
ioctl_ior_nr!(KVM_GET_REGS, KVMIO, 0x81, kvm_bindings::kvm_regs);
ioctl_iow_nr!(KVM_SET_REGS, KVMIO, 0x82, kvm_bindings::kvm_regs);
ioctl_iow_nr!(KVM_IRQ_LINE, KVMIO, 0x61, kvm_bindings::kvm_irq_level);
ioctl_iow_nr!(KVM_IRQFD, KVMIO, 0x76, kvm_bindings::kvm_irqfd);
ioctl_iow_nr!(KVM_IOEVENTFD, KVMIO, 0x79, kvm_bindings::kvm_ioeventfd);
ioctl_ior_nr!(KVM_GET_SREGS, KVMIO, 0x83, kvm_bindings::kvm_sregs);
ioctl_iow_nr!(KVM_SET_SREGS, KVMIO, 0x84, kvm_bindings::kvm_sregs);
ioctl_iow_nr!(KVM_SIGNAL_MSI, KVMIO, 0xa5, kvm_bindings::kvm_msi);
ioctl_ior_nr!(KVM_GET_MP_STATE, KVMIO, 0x98, kvm_bindings::kvm_mp_state);
ioctl_io_nr!(KVM_REINJECT_CONTROL, KVMIO, 0x71);
ioctl_iow_nr!(
    KVM_SET_PMU_EVENT_FILTER,
    KVMIO,
    0xb2,
    kvm_bindings::kvm_pmu_event_filter
);

/// Names and numbers of the ioctl requests microvm knows (filters, reports, `from-strace`).
/// Only requests with a fixed number are listed (no size-dependent `_IOC` families).
pub fn known() -> Vec<(&'static str, u64)> {
    vec![
        ("KVM_RUN", KVM_RUN()),
        ("KVM_GET_REGS", KVM_GET_REGS()),
        ("KVM_SET_REGS", KVM_SET_REGS()),
        ("KVM_GET_SREGS", KVM_GET_SREGS()),
        ("KVM_SET_SREGS", KVM_SET_SREGS()),
        ("KVM_IRQ_LINE", KVM_IRQ_LINE()),
        ("KVM_IRQFD", KVM_IRQFD()),
        ("KVM_IOEVENTFD", KVM_IOEVENTFD()),
        ("KVM_SIGNAL_MSI", KVM_SIGNAL_MSI()),
        ("KVM_GET_MP_STATE", KVM_GET_MP_STATE()),
        ("KVM_REINJECT_CONTROL", KVM_REINJECT_CONTROL()),
        ("KVM_SET_PMU_EVENT_FILTER", KVM_SET_PMU_EVENT_FILTER()),
        ("TCGETS", TCGETS),
        ("TCSETS", TCSETS),
        ("TCSETSW", TCSETSW),
        ("TCSETSF", TCSETSF),
        ("TIOCGWINSZ", libc::TIOCGWINSZ),
        ("FIONBIO", libc::FIONBIO),
        ("FIONREAD", libc::FIONREAD),
    ]
}

/// The name of ioctl request `request` (compared as 32 bits), if known.
pub fn name_of(request: u64) -> Option<&'static str> {
    let request = request & 0xffff_ffff;
    known()
        .into_iter()
        .find(|(_, r)| *r == request)
        .map(|(n, _)| n)
}

/// The number of the ioctl request called `name`, if known.
pub fn number_of(name: &str) -> Option<u64> {
    known()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| r)
}

/// Get terminal attributes (`tcgetattr`, `isatty`).
pub const TCGETS: u64 = libc::TCGETS;
/// Set terminal attributes now (`tcsetattr(TCSANOW)`).
pub const TCSETS: u64 = libc::TCSETS;
/// Set terminal attributes after output drains (`tcsetattr(TCSADRAIN)`).
pub const TCSETSW: u64 = libc::TCSETSW;
/// Set terminal attributes after draining and flushing input (`tcsetattr(TCSAFLUSH)`).
pub const TCSETSF: u64 = libc::TCSETSF;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_match_the_kernel_headers() {
        assert_eq!(KVM_RUN(), 0xae80);
        assert_eq!(KVM_GET_REGS(), 0x8090_ae81);
        assert_eq!(KVM_SET_REGS(), 0x4090_ae82);
        assert_eq!(KVM_IRQ_LINE(), 0x4008_ae61);
        assert_eq!(KVM_IRQFD(), 0x4020_ae76);
        assert_eq!(KVM_IOEVENTFD(), 0x4040_ae79);
        assert_eq!(TCGETS, 0x5401);
        assert_eq!(TCSETS, 0x5402);
        assert_eq!(TCSETSW, 0x5403);
        assert_eq!(TCSETSF, 0x5404);
    }
}
