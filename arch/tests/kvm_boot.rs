//! End-to-end check on a real vCPU (needs /dev/kvm): set up the boot state with the
//! crate's API and run a few instructions that only work in 64-bit long mode with the
//! identity map in place.

use arch::layout::{HIMEM_START, ZERO_PAGE_START};
use arch::{
    build_boot_params, normalize_cpuid, ram_regions, setup_fpu, setup_lapic, setup_long_mode,
    setup_mptable, setup_msrs, setup_regs, write_boot_params, BootParamsConfig, GuestMemoryMmap,
};
use kvm_bindings::{kvm_msr_entry, kvm_userspace_memory_region, Msrs, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuExit};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

const MEM_SIZE: u64 = 1 << 30;
const MAGIC_ADDR: u64 = 0x3000_0000;
const MAGIC: u64 = 0xCAFE_F00D_1234_5678;

/// movabs rcx, 0x1122334455667788; mov rbx, [0x30000000]; mov dx, 0x3f8; mov al, 'K';
/// out dx, al; hlt
const GUEST_CODE: &[u8] = &[
    0x48, 0xB9, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // movabs rcx, imm64
    0x48, 0x8B, 0x1C, 0x25, 0x00, 0x00, 0x00, 0x30, // mov rbx, [disp32]
    0x66, 0xBA, 0xF8, 0x03, // mov dx, 0x3f8
    0xB0, b'K', // mov al, 'K'
    0xEE, // out dx, al
    0xF4, // hlt
];

#[test]
fn boots_into_long_mode_on_kvm() {
    let kvm = Kvm::new().expect("open /dev/kvm");
    let vm = kvm.create_vm().unwrap();
    vm.set_tss_address(0xFFFB_D000).unwrap();
    vm.create_irq_chip().unwrap();

    let mem = GuestMemoryMmap::from_ranges(&ram_regions(MEM_SIZE).unwrap()).unwrap();
    for (slot, region) in mem.iter().enumerate() {
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .unwrap();
        let desc = kvm_userspace_memory_region {
            slot: slot as u32,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
            flags: 0,
        };
        // SAFETY: the region is a live mmap owned by `mem`, which outlives the VM.
        unsafe { vm.set_user_memory_region(desc) }.unwrap();
    }

    let mut vcpu = vm.create_vcpu(0).unwrap();
    let mut cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).unwrap();
    normalize_cpuid(&mut cpuid, 0, 1).unwrap();
    vcpu.set_cpuid2(&cpuid).unwrap();

    setup_mptable(&mem, 1).unwrap();
    let params = build_boot_params(&BootParamsConfig {
        mem_size: MEM_SIZE,
        setup_header: None,
        cmdline_addr: GuestAddress(0x2_0000),
        cmdline_len: 0,
        initrd: None,
        rsdp: None,
    })
    .unwrap();
    write_boot_params(&mem, &params).unwrap();
    mem.write_slice(GUEST_CODE, GuestAddress(HIMEM_START))
        .unwrap();
    mem.write_obj(MAGIC, GuestAddress(MAGIC_ADDR)).unwrap();

    setup_long_mode(&mem, &vcpu).unwrap();
    setup_regs(&vcpu, HIMEM_START, ZERO_PAGE_START).unwrap();
    setup_fpu(&vcpu).unwrap();
    setup_msrs(&vcpu).unwrap();
    setup_lapic(&vcpu).unwrap();

    // MSRs and LAPIC read back as configured.
    let mut msrs = Msrs::from_entries(&[
        kvm_msr_entry {
            index: 0x2FF,
            ..Default::default()
        },
        kvm_msr_entry {
            index: 0x1A0,
            ..Default::default()
        },
    ])
    .unwrap();
    assert_eq!(vcpu.get_msrs(&mut msrs).unwrap(), 2);
    assert_eq!(msrs.as_slice()[0].data, 0x806);
    assert_eq!(msrs.as_slice()[1].data & 1, 1);
    let lapic = vcpu.get_lapic().unwrap();
    assert_eq!(arch::lapic::get_lapic_reg(&lapic, 0x350) & 0x700, 0x700);
    assert_eq!(arch::lapic::get_lapic_reg(&lapic, 0x360) & 0x700, 0x400);
    // Only FCW is checked: on the PVM-based KVM of this machine KVM_GET_FPU reports
    // MXCSR as 0 whatever KVM_SET_FPU wrote (and its emulator cannot run stmxcsr).
    assert_eq!(vcpu.get_fpu().unwrap().fcw, 0x37F);

    let exit = match vcpu.run().unwrap() {
        VcpuExit::IoOut(port, data) => Some((port, data.to_vec())),
        other => {
            eprintln!("unexpected exit {other:?}");
            None
        }
    };
    assert_eq!(
        exit,
        Some((0x3F8, b"K".to_vec())),
        "regs {:x?} sregs {:x?}",
        vcpu.get_regs(),
        vcpu.get_sregs().map(|s| (s.cr0, s.cr4, s.efer))
    );
    let regs = vcpu.get_regs().unwrap();
    assert_eq!(
        regs.rcx, 0x1122_3344_5566_7788,
        "64-bit immediate => long mode"
    );
    assert_eq!(regs.rbx, MAGIC, "read at 768 MiB through the identity map");
    assert_eq!(regs.rsi, ZERO_PAGE_START);
    assert_eq!(regs.rsp, 0x8FF0);
    let sregs = vcpu.get_sregs().unwrap();
    assert_eq!(sregs.efer & 0x500, 0x500, "LME and LMA");
    assert_eq!((sregs.cs.selector, sregs.cs.l), (0x10, 1));
    assert_eq!(sregs.cr3, 0x9000);
}
