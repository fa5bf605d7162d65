//! The Xen PVH boot ABI (xen/include/public/arch-x86/hvm/start_info.h), as QEMU, Cloud
//! Hypervisor and Firecracker use it for ELF kernels that carry a `XEN_ELFNOTE_PHYS32_ENTRY`
//! note: the boot vCPU starts in 32-bit protected mode with paging off, flat 4 GiB code and
//! data segments, and EBX = the guest address of `struct hvm_start_info`, which points at the
//! command line, the memory map and (for an initramfs) a module list.

use kvm_bindings::{kvm_regs, kvm_sregs};
use kvm_ioctls::VcpuFd;
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use vm_memory::GuestAddress;

use crate::bootparams::InitrdConfig;
use crate::e820::e820_map;
use crate::gdt::{code_segment, write_gdt_idt};
use crate::layout::{PVH_INFO_START, PVH_MEMMAP_START, PVH_MODLIST_START};
use crate::regs::{flat_segments, BOOT_RFLAGS, X86_CR0_ET, X86_CR0_PE};
use crate::{kvm_err, Error, GuestMemoryMmap, Result};

/// `hvm_start_info.magic`.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;
/// `hvm_start_info.version` written: 1 has the memory map fields.
pub const HVM_START_INFO_VERSION: u32 = 1;

/// Inputs of [`write_start_info`].
#[derive(Debug, Clone, Copy)]
pub struct PvhConfig {
    /// Guest RAM size in bytes (as given to [`ram_regions`](crate::memory::ram_regions)).
    pub mem_size: u64,
    /// Guest address of the NUL-terminated command line.
    pub cmdline_addr: GuestAddress,
    /// The initramfs, passed as the first (only) module.
    pub initrd: Option<InitrdConfig>,
    /// Guest address of the ACPI RSDP, if the VM has ACPI tables.
    pub rsdp: Option<u64>,
}

/// The `hvm_start_info`, memory map and module list for `cfg`.
pub fn build_start_info(
    cfg: &PvhConfig,
) -> Result<(
    hvm_start_info,
    Vec<hvm_memmap_table_entry>,
    Vec<hvm_modlist_entry>,
)> {
    let memmap: Vec<hvm_memmap_table_entry> = e820_map(cfg.mem_size)?
        .iter()
        .map(|e| hvm_memmap_table_entry {
            addr: e.addr,
            size: e.size,
            type_: e.mem_type,
            reserved: 0,
        })
        .collect();
    let modules: Vec<hvm_modlist_entry> = cfg
        .initrd
        .iter()
        .map(|i| hvm_modlist_entry {
            paddr: i.addr.0,
            size: i.size,
            ..Default::default()
        })
        .collect();
    let start_info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: HVM_START_INFO_VERSION,
        nr_modules: modules.len() as u32,
        modlist_paddr: if modules.is_empty() {
            0
        } else {
            PVH_MODLIST_START
        },
        cmdline_paddr: cfg.cmdline_addr.0,
        memmap_paddr: PVH_MEMMAP_START,
        memmap_entries: memmap.len() as u32,
        rsdp_paddr: cfg.rsdp.unwrap_or(0),
        ..Default::default()
    };
    Ok((start_info, memmap, modules))
}

/// Writes `hvm_start_info` at [`PVH_INFO_START`], the memory map at [`PVH_MEMMAP_START`] and
/// the module list at [`PVH_MODLIST_START`] with linux-loader's PVH configurator.
pub fn write_start_info(mem: &GuestMemoryMmap, cfg: &PvhConfig) -> Result<()> {
    let (start_info, memmap, modules) = build_start_info(cfg)?;
    let mut params = BootParams::new(&start_info, GuestAddress(PVH_INFO_START));
    params.set_sections(&memmap, GuestAddress(PVH_MEMMAP_START));
    if !modules.is_empty() {
        params.set_modules(&modules, GuestAddress(PVH_MODLIST_START));
    }
    PvhBootConfigurator::write_bootparams::<GuestMemoryMmap>(&params, mem)
        .map_err(|e| Error::Pvh(e.to_string()))
}

/// Applies the PVH entry state to `sregs` (read from the vCPU): protected mode without
/// paging (CR0 = PE|ET, CR3 = CR4 = EFER = 0), flat 32-bit code (D=1, L=0) and data
/// segments, the boot GDT/IDT. Other fields (APIC base, ...) are kept.
pub fn protected_mode_sregs(sregs: kvm_sregs) -> kvm_sregs {
    let mut code = code_segment();
    code.l = 0;
    code.db = 1;
    let mut sregs = flat_segments(sregs, code);
    sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
    sregs.cr3 = 0;
    sregs.cr4 = 0;
    sregs.efer = 0;
    sregs
}

/// General registers at the PVH entry: RIP = `entry`, RBX = [`PVH_INFO_START`],
/// RFLAGS = 0x2, all others 0.
pub fn pvh_regs(entry: u64) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rbx: PVH_INFO_START,
        rflags: BOOT_RFLAGS,
        ..Default::default()
    }
}

/// Puts the boot vCPU at the PVH entry `entry`: writes the boot GDT/IDT and sets the
/// protected-mode segment and general registers (KVM_GET/SET_SREGS, KVM_SET_REGS).
pub fn setup_pvh_entry(mem: &GuestMemoryMmap, vcpu: &VcpuFd, entry: u64) -> Result<()> {
    write_gdt_idt(mem)?;
    let sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
    vcpu.set_sregs(&protected_mode_sregs(sregs))
        .map_err(kvm_err("KVM_SET_SREGS"))?;
    vcpu.set_regs(&pvh_regs(entry))
        .map_err(kvm_err("KVM_SET_REGS"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Bytes, GuestMemoryMmap as Mmap};

    #[test]
    fn start_info_points_at_the_memmap_cmdline_and_module() {
        let cfg = PvhConfig {
            mem_size: 128 << 20,
            cmdline_addr: GuestAddress(0x20000),
            initrd: Some(InitrdConfig {
                addr: GuestAddress(0x400_0000),
                size: 0x1000,
            }),
            rsdp: Some(0xe_0000),
        };
        let mem: Mmap<()> = Mmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write_start_info(&mem, &cfg).unwrap();
        let si: hvm_start_info = mem.read_obj(GuestAddress(PVH_INFO_START)).unwrap();
        assert_eq!(si.magic, 0x336e_c578);
        assert_eq!(si.version, 1);
        assert_eq!(si.cmdline_paddr, 0x20000);
        assert_eq!(si.rsdp_paddr, 0xe_0000);
        assert_eq!(si.memmap_paddr, PVH_MEMMAP_START);
        let n = si.memmap_entries as usize;
        assert_eq!(n, e820_map(128 << 20).unwrap().len());
        let first: hvm_memmap_table_entry = mem.read_obj(GuestAddress(PVH_MEMMAP_START)).unwrap();
        assert_eq!((first.addr, first.type_), (0, crate::E820_RAM));
        assert_eq!((si.nr_modules, si.modlist_paddr), (1, PVH_MODLIST_START));
        let m: hvm_modlist_entry = mem.read_obj(GuestAddress(PVH_MODLIST_START)).unwrap();
        assert_eq!((m.paddr, m.size), (0x400_0000, 0x1000));
    }

    #[test]
    fn no_initramfs_no_module() {
        let cfg = PvhConfig {
            mem_size: 64 << 20,
            cmdline_addr: GuestAddress(0x20000),
            initrd: None,
            rsdp: None,
        };
        let (si, _, modules) = build_start_info(&cfg).unwrap();
        assert_eq!((si.nr_modules, si.modlist_paddr), (0, 0));
        assert!(modules.is_empty());
    }

    #[test]
    fn entry_state_follows_the_pvh_abi() {
        let s = protected_mode_sregs(kvm_sregs {
            apic_base: 0xFEE0_0900,
            ..Default::default()
        });
        assert_eq!((s.cr0, s.cr3, s.cr4, s.efer), (0x11, 0, 0, 0));
        assert_eq!(
            (s.cs.l, s.cs.db, s.cs.base, s.cs.limit),
            (0, 1, 0, 0xFFFF_FFFF)
        );
        assert_eq!((s.ds.db, s.ds.base, s.ds.limit), (1, 0, 0xFFFF_FFFF));
        assert_eq!(s.apic_base, 0xFEE0_0900, "kept");
        let r = pvh_regs(0x10_0110);
        assert_eq!((r.rip, r.rbx, r.rflags), (0x10_0110, 0x6000, 2));
    }
}
