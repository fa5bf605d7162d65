//! Boot-time model-specific registers.

use kvm_bindings::{kvm_msr_entry, Msrs};
use kvm_ioctls::VcpuFd;

use crate::{kvm_err, Error, Result};

/// IA32_TSC.
pub const MSR_IA32_TSC: u32 = 0x10;
/// IA32_SYSENTER_CS.
pub const MSR_IA32_SYSENTER_CS: u32 = 0x174;
/// IA32_SYSENTER_ESP.
pub const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
/// IA32_SYSENTER_EIP.
pub const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
/// IA32_MISC_ENABLE.
pub const MSR_IA32_MISC_ENABLE: u32 = 0x1A0;
/// IA32_MTRR_DEF_TYPE.
pub const MSR_MTRR_DEF_TYPE: u32 = 0x2FF;
/// STAR: SYSCALL/SYSRET segment selectors.
pub const MSR_STAR: u32 = 0xC000_0081;
/// LSTAR: 64-bit SYSCALL target.
pub const MSR_LSTAR: u32 = 0xC000_0082;
/// CSTAR: compatibility-mode SYSCALL target.
pub const MSR_CSTAR: u32 = 0xC000_0083;
/// SFMASK: SYSCALL RFLAGS mask.
pub const MSR_SYSCALL_MASK: u32 = 0xC000_0084;
/// KERNEL_GS_BASE: SWAPGS target.
pub const MSR_KERNEL_GS_BASE: u32 = 0xC000_0102;

/// IA32_MISC_ENABLE bit 0: fast-strings enable.
pub const MISC_ENABLE_FAST_STRING: u64 = 1 << 0;
/// IA32_MTRR_DEF_TYPE bit 11: MTRRs enabled.
pub const MTRR_ENABLE: u64 = 1 << 11;
/// Memory type write-back.
pub const MTRR_MEM_TYPE_WB: u64 = 0x6;

/// The MSRs set on every vCPU before it runs, as `(index, value)`.
pub fn boot_msr_entries() -> Vec<kvm_msr_entry> {
    [
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_CSTAR, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_LSTAR, 0),
        (MSR_IA32_TSC, 0),
        (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
        (MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_MEM_TYPE_WB),
    ]
    .into_iter()
    .map(|(index, data)| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    })
    .collect()
}

/// Checks that KVM_SET_MSRS wrote all `entries`; names the first rejected MSR otherwise.
fn check_written(entries: &[kvm_msr_entry], written: usize) -> Result<()> {
    if written == entries.len() {
        return Ok(());
    }
    Err(Error::MsrsPartial {
        written,
        total: entries.len(),
        failed_index: entries.get(written).map_or(0, |e| e.index),
    })
}

/// Sets [`boot_msr_entries`] on `vcpu` (KVM_SET_MSRS) and checks all were written.
pub fn setup_msrs(vcpu: &VcpuFd) -> Result<()> {
    let entries = boot_msr_entries();
    let msrs = Msrs::from_entries(&entries).map_err(|_| Error::MsrsTooMany(entries.len()))?;
    let written = vcpu.set_msrs(&msrs).map_err(kvm_err("KVM_SET_MSRS"))?;
    check_written(&entries, written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_of(entries: &[kvm_msr_entry], index: u32) -> Option<u64> {
        entries.iter().find(|e| e.index == index).map(|e| e.data)
    }

    #[test]
    fn boot_msr_values() {
        let e = boot_msr_entries();
        assert_eq!(e.len(), 11);
        assert_eq!(value_of(&e, 0x1A0), Some(1), "fast strings");
        assert_eq!(value_of(&e, 0x2FF), Some(0x806), "MTRRs on, default WB");
        for idx in [
            0x10,
            0x174,
            0x175,
            0x176,
            0xC000_0081,
            0xC000_0082,
            0xC000_0083,
            0xC000_0084,
            0xC000_0102,
        ] {
            assert_eq!(value_of(&e, idx), Some(0), "MSR {idx:#x}");
        }
    }

    #[test]
    fn partial_write_names_the_failed_msr() {
        let e = boot_msr_entries();
        assert!(check_written(&e, e.len()).is_ok());
        let err = check_written(&e, 3).unwrap_err();
        assert!(matches!(
            err,
            Error::MsrsPartial {
                written: 3,
                total: 11,
                failed_index: 0xC000_0081
            }
        ));
        assert_eq!(
            err.to_string(),
            "KVM_SET_MSRS wrote 3 of 11 MSRs; MSR 0xc0000081 was rejected"
        );
    }
}
