//! The host kernel's grace periods a VM start leaves behind, waited out by the `vmm` thread
//! once the guest runs instead of at start-up or teardown (docs/performance.md, "Start-up
//! and teardown").
//!
//! Every device KVM puts on an I/O bus (the irqchip's, each ioeventfd) frees the bus it
//! replaced after a normal SRCU grace period of the VM (~15 ms at HZ=250), and the VM's
//! destruction waits for it (`srcu_barrier` in `kvm_destroy_vm`): a guest that lives for
//! less than that paid the rest between its exit and the process's.

use kvm_ioctls::VmFd;

use crate::error::{Error, Result};

// The numbers the vmm thread's filter allows on the VM fd, from the same place.
use seccomp::ioctls::{KVM_REINJECT_CONTROL, KVM_SET_PMU_EVENT_FILTER};

/// Turns the PIT's lost-tick reinjection off (QEMU's `lost_tick_policy=discard`), with
/// `--pit on`: ticks the guest missed are dropped instead of replayed. Guests keep time
/// with the TSC, kvmclock or the LAPIC timer, not by counting PIT ticks.
///
/// Why: with reinjection on, the kernel's teardown of the VM (kvm_free_pit) unregisters the
/// PIT's IRQ ack and mask notifiers, two back-to-back synchronize_srcu() calls on the VM's
/// irq_srcu; the second is often a normal (not expedited) grace period, 10-20 ms at
/// HZ=250. Here it runs while the guest does, though vCPU 0 waits for it when it lands on
/// a new host CPU meanwhile (KVM takes the PIT's lock in KVM_RUN then).
pub fn discard_lost_pit_ticks(vm: &VmFd) -> Result<()> {
    let control = kvm_bindings::kvm_reinject_control::default();
    // SAFETY: KVM_REINJECT_CONTROL reads one kvm_reinject_control, which outlives the call.
    let r = unsafe { vmm_sys_util::ioctl::ioctl_with_ref(vm, KVM_REINJECT_CONTROL(), &control) };
    checked("KVM_REINJECT_CONTROL", r)
}

/// Ends the grace period the set-up's I/O-bus registrations left running, in ~5 ms
/// instead of ~15, so that the VM's teardown does not wait for it.
///
/// How: KVM_SET_PMU_EVENT_FILTER waits for an expedited grace period of the VM's srcu,
/// which hurries the one in flight; the filter set is the empty deny list, which denies
/// no event (the guest's PMU, if the host offers one, counts as before). It is the one VM
/// ioctl found that expedites that grace period without touching guest memory or devices.
pub fn end_setup_grace_period(vm: &VmFd) -> Result<()> {
    let filter = kvm_bindings::kvm_pmu_event_filter {
        action: kvm_bindings::KVM_PMU_EVENT_DENY,
        ..Default::default()
    };
    // SAFETY: KVM_SET_PMU_EVENT_FILTER reads one kvm_pmu_event_filter (nevents = 0, so no
    // event array follows it), which outlives the call.
    let r = unsafe { vmm_sys_util::ioctl::ioctl_with_ref(vm, KVM_SET_PMU_EVENT_FILTER(), &filter) };
    checked("KVM_SET_PMU_EVENT_FILTER", r)
}

/// The result of the ioctl `name` that returned `r`, with errno as its error.
fn checked(name: &'static str, r: i32) -> Result<()> {
    if r < 0 {
        return Err(Error::Kvm {
            name,
            source: kvm_ioctls::Error::last(),
        });
    }
    Ok(())
}
