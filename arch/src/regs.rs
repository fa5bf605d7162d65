//! vCPU registers at the 64-bit kernel entry point (boot.rst, "64-bit boot protocol").

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs};
use kvm_ioctls::VcpuFd;

use crate::gdt::{code_segment, data_segment, tss_segment, write_gdt_idt, IDT_SIZE};
use crate::layout::{BOOT_STACK_TOP, GDT_ENTRIES, GDT_START, IDT_START, PML4_START};
use crate::paging::write_page_tables;
use crate::{kvm_err, GuestMemoryMmap, Result};

/// Re-exported so all per-vCPU boot setup is reachable from `arch::regs`.
pub use crate::lapic::setup_lapic;
/// Re-exported so all per-vCPU boot setup is reachable from `arch::regs`.
pub use crate::msrs::setup_msrs;

/// CR0: protected mode enable.
pub const X86_CR0_PE: u64 = 1 << 0;
/// CR0: extension type (always 1 on modern CPUs).
pub const X86_CR0_ET: u64 = 1 << 4;
/// CR0: paging.
pub const X86_CR0_PG: u64 = 1 << 31;
/// CR4: physical address extension.
pub const X86_CR4_PAE: u64 = 1 << 5;
/// EFER: long mode enable.
pub const EFER_LME: u64 = 1 << 8;
/// EFER: long mode active.
pub const EFER_LMA: u64 = 1 << 10;
/// RFLAGS at entry: only the always-one bit 1 (interrupts disabled).
pub const BOOT_RFLAGS: u64 = 0x2;
/// x87 control word at entry (all exceptions masked, extended precision).
pub const BOOT_FCW: u16 = 0x37F;
/// MXCSR at entry (all SSE exceptions masked, round to nearest).
pub const BOOT_MXCSR: u32 = 0x1F80;

/// Applies long-mode state to `sregs` (read from the vCPU): flat segments from the boot
/// GDT (CS 0x10, DS/ES/FS/GS/SS 0x18, TR 0x08), GDT/IDT registers, CR0 = PE|ET|PG,
/// CR3 = PML4, CR4 = PAE, EFER = LME|LMA. Other fields (APIC base, ...) are kept.
pub fn long_mode_sregs(sregs: kvm_sregs) -> kvm_sregs {
    let mut sregs = flat_segments(sregs, code_segment());
    sregs.cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
    sregs.cr3 = PML4_START;
    sregs.cr4 = X86_CR4_PAE;
    sregs.efer = EFER_LME | EFER_LMA;
    sregs
}

/// `sregs` with `code` in CS, the boot GDT's flat data segment in DS/ES/FS/GS/SS, its TSS
/// in TR, and GDTR/IDTR on the boot GDT and IDT: what both entries (64-bit and PVH's
/// 32-bit) share.
pub(crate) fn flat_segments(mut sregs: kvm_sregs, code: kvm_bindings::kvm_segment) -> kvm_sregs {
    let data = data_segment();
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss_segment();
    sregs.gdt.base = GDT_START;
    sregs.gdt.limit = (8 * GDT_ENTRIES - 1) as u16;
    sregs.idt.base = IDT_START;
    sregs.idt.limit = (IDT_SIZE - 1) as u16;
    sregs
}

/// General registers at entry: RIP = `entry`, RSI = `boot_params` (zero page address),
/// RSP = RBP = [`BOOT_STACK_TOP`], RFLAGS = 0x2, all others 0.
pub fn boot_regs(entry: u64, boot_params: u64) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rsi: boot_params,
        rsp: BOOT_STACK_TOP,
        rbp: BOOT_STACK_TOP,
        rflags: BOOT_RFLAGS,
        ..Default::default()
    }
}

/// FPU state at entry: FCW 0x37F, MXCSR 0x1F80.
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: BOOT_FCW,
        mxcsr: BOOT_MXCSR,
        ..Default::default()
    }
}

/// Writes the GDT, IDT and identity page tables into `mem` and puts `vcpu` in 64-bit
/// long mode with them (KVM_GET_SREGS, then KVM_SET_SREGS).
pub fn setup_long_mode(mem: &GuestMemoryMmap, vcpu: &VcpuFd) -> Result<()> {
    write_gdt_idt(mem)?;
    write_page_tables(mem)?;
    let sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
    vcpu.set_sregs(&long_mode_sregs(sregs))
        .map_err(kvm_err("KVM_SET_SREGS"))
}

/// Sets the general registers with [`boot_regs`] (KVM_SET_REGS).
pub fn setup_regs(vcpu: &VcpuFd, entry: u64, boot_params: u64) -> Result<()> {
    vcpu.set_regs(&boot_regs(entry, boot_params))
        .map_err(kvm_err("KVM_SET_REGS"))
}

/// Sets the FPU state with [`boot_fpu`] (KVM_SET_FPU).
pub fn setup_fpu(vcpu: &VcpuFd) -> Result<()> {
    vcpu.set_fpu(&boot_fpu()).map_err(kvm_err("KVM_SET_FPU"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sregs_enter_long_mode() {
        let before = kvm_sregs {
            apic_base: 0xFEE0_0900,
            cr0: 0x6000_0010,
            ..Default::default()
        };
        let s = long_mode_sregs(before);
        assert_eq!(s.cr0, 0x8000_0011, "PG | ET | PE, caches enabled");
        assert_eq!(s.cr3, 0x9000);
        assert_eq!(s.cr4, 0x20);
        assert_eq!(s.efer, 0x500);
        assert_eq!(s.apic_base, 0xFEE0_0900, "kept");
        assert_eq!((s.gdt.base, s.gdt.limit), (0x500, 31));
        assert_eq!((s.idt.base, s.idt.limit), (0x520, 15));

        assert_eq!(s.cs.selector, 0x10);
        assert_eq!((s.cs.l, s.cs.db, s.cs.s, s.cs.type_), (1, 0, 1, 0xB));
        assert_eq!((s.cs.present, s.cs.g, s.cs.dpl), (1, 1, 0));
        assert_eq!((s.cs.base, s.cs.limit), (0, 0xFFFF_FFFF));
        for seg in [s.ds, s.es, s.fs, s.gs, s.ss] {
            assert_eq!(seg.selector, 0x18);
            assert_eq!((seg.l, seg.db, seg.s, seg.type_), (0, 1, 1, 0x3));
            assert_eq!((seg.present, seg.g, seg.unusable), (1, 1, 0));
        }
        assert_eq!(s.tr.selector, 0x08);
        assert_eq!((s.tr.s, s.tr.type_, s.tr.present), (0, 0xB, 1));
    }

    #[test]
    fn regs_follow_the_64_bit_boot_protocol() {
        let r = boot_regs(0x100_0000, 0x7000);
        assert_eq!(r.rip, 0x100_0000);
        assert_eq!(r.rsi, 0x7000);
        assert_eq!((r.rsp, r.rbp), (0x8FF0, 0x8FF0));
        assert_eq!(r.rflags, 2);
        assert_eq!((r.rax, r.rbx, r.rdi), (0, 0, 0));
    }

    #[test]
    fn fpu_defaults() {
        let f = boot_fpu();
        assert_eq!(f.fcw, 0x37F);
        assert_eq!(f.mxcsr, 0x1F80);
        assert_eq!(f.fsw, 0);
    }
}
