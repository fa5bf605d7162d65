//! CPUID normalization tests on a synthetic table shaped like KVM's.

use super::*;

fn leaf(function: u32, index: u32, regs: [u32; 4]) -> kvm_cpuid_entry2 {
    kvm_cpuid_entry2 {
        function,
        index,
        flags: 0,
        eax: regs[0],
        ebx: regs[1],
        ecx: regs[2],
        edx: regs[3],
        padding: [0; 3],
    }
}

/// A table like KVM_GET_SUPPORTED_CPUID on an Intel host: leaf 0xB/0x1F with only a
/// zeroed sub-leaf 0, cache leaves 4.0-4.3 plus the null terminator.
fn synthetic() -> CpuId {
    CpuId::from_entries(&[
        leaf(0, 0, [0x1F, 0x756E_6547, 0x6C65_746E, 0x4965_6E69]),
        // Family 6; EBX: CLFLUSH size 8, bogus APIC id 0x55 and count 0x10 from the host.
        leaf(
            1,
            0,
            [
                0x0009_06EA,
                0x5510_0800,
                0x07FA_3223 | (1 << 24),
                0x0F8B_FBFF,
            ],
        ),
        leaf(4, 0, [0x1C00_4121, 0x01C0_003F, 0x3F, 0]),
        leaf(4, 1, [0x1C00_4122, 0x01C0_003F, 0x3F, 0]),
        leaf(4, 2, [0x1C00_4143, 0x03C0_003F, 0x3FF, 0]),
        leaf(4, 3, [0x1C03_C163, 0x03C0_003F, 0x3FFF, 6]),
        leaf(4, 4, [0, 0, 0, 0]),
        leaf(6, 0, [0x4, 0, 0x9, 0]),
        leaf(0xB, 0, [0, 0, 0, 0]),
        leaf(0x1F, 0, [0, 0, 0, 0]),
        leaf(
            0x4000_0000,
            0,
            [0x4000_0001, 0x4B4D_564B, 0x564B_4D56, 0x4D],
        ),
        leaf(0x8000_0008, 0, [0x3027, 0, 0, 0]),
    ])
    .unwrap()
}

fn find(cpuid: &CpuId, function: u32, index: u32) -> kvm_cpuid_entry2 {
    *cpuid
        .as_slice()
        .iter()
        .find(|e| e.function == function && e.index == index)
        .unwrap_or_else(|| panic!("leaf {function:#x}.{index} missing"))
}

#[test]
fn leaf1_apic_id_count_and_hypervisor_bit() {
    let mut c = synthetic();
    normalize_cpuid(&mut c, 3, 4).unwrap();
    let e = find(&c, 1, 0);
    assert_eq!(e.ebx >> 24, 3, "initial APIC id");
    assert_eq!((e.ebx >> 16) & 0xFF, 4, "logical processor count");
    assert_eq!(e.ebx & 0xFFFF, 0x0800, "CLFLUSH size kept");
    assert_ne!(e.ecx & (1 << 31), 0, "hypervisor bit");
    assert_ne!(e.ecx & (1 << 24), 0, "TSC deadline kept as reported");
    assert_ne!(e.edx & (1 << 28), 0, "HTT with 4 CPUs");
    assert_eq!(e.eax, 0x0009_06EA, "signature untouched");
}

#[test]
fn leaf1_single_cpu_clears_htt() {
    let mut c = synthetic();
    normalize_cpuid(&mut c, 0, 1).unwrap();
    let e = find(&c, 1, 0);
    assert_eq!(e.ebx >> 16, 0x0001);
    assert_eq!(e.edx & (1 << 28), 0);
}

#[test]
fn extended_topology_leaves() {
    for function in [0xB, 0x1F] {
        let mut c = synthetic();
        normalize_cpuid(&mut c, 5, 6).unwrap();
        let smt = find(&c, function, 0);
        assert_eq!(smt.eax & 0x1F, 0, "no thread bits");
        assert_eq!(smt.ebx & 0xFFFF, 1, "1 thread per core");
        assert_eq!(smt.ecx, 0x100, "level 0, type SMT");
        assert_eq!(smt.edx, 5, "x2APIC id");
        let core = find(&c, function, 1);
        assert_eq!(core.eax & 0x1F, 3, "6 cores need 3 APIC id bits");
        assert_eq!(core.ebx & 0xFFFF, 6, "6 logical processors in the package");
        assert_eq!(core.ecx, 0x201, "level 1, type core");
        assert_eq!(core.edx, 5);
        assert_eq!(core.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX, 1);
        // Package id = APIC id >> shift is 0 for every vCPU.
        assert_eq!(5 >> (core.eax & 0x1F), 0);
    }
}

#[test]
fn topology_shift_for_various_counts() {
    for (n, bits) in [
        (1u8, 0u32),
        (2, 1),
        (3, 2),
        (4, 2),
        (5, 3),
        (32, 5),
        (33, 6),
    ] {
        let mut c = synthetic();
        normalize_cpuid(&mut c, 0, n).unwrap();
        assert_eq!(find(&c, 0xB, 1).eax, bits, "{n} CPUs");
    }
}

#[test]
fn leaf4_cores_per_package_and_sharing() {
    let mut c = synthetic();
    normalize_cpuid(&mut c, 0, 8).unwrap();
    for index in 0..3 {
        let e = find(&c, 4, index);
        assert_eq!(e.eax >> 26, 7, "8 cores - 1");
        assert_eq!((e.eax >> 14) & 0xFFF, 0, "L1/L2 not shared");
    }
    let l3 = find(&c, 4, 3);
    assert_eq!(l3.eax >> 26, 7);
    assert_eq!((l3.eax >> 14) & 0xFFF, 7, "L3 shared by 8");
    assert_eq!(l3.eax & 0x3FFF, 0x0163 & 0x3FFF, "type/level bits kept");
    assert_eq!(find(&c, 4, 4).eax, 0, "null sub-leaf untouched");
}

#[test]
fn leaf6_epb_cleared_and_kvm_leaf_untouched() {
    let mut c = synthetic();
    normalize_cpuid(&mut c, 0, 2).unwrap();
    let e = find(&c, 6, 0);
    assert_eq!(e.ecx, 0x1, "EPB (bit 3) cleared, bit 0 kept");
    assert_eq!(e.eax, 0x4, "ARAT kept");
    let kvm = find(&c, 0x4000_0000, 0);
    assert_eq!(
        (kvm.eax, kvm.ebx, kvm.ecx, kvm.edx),
        (0x4000_0001, 0x4B4D_564B, 0x564B_4D56, 0x4D)
    );
    let amd = find(&c, 0x8000_0008, 0);
    assert_eq!(amd.eax, 0x3027, "address sizes kept");
    assert_eq!(amd.ecx, 0x1001, "NC = 1, ApicIdCoreIdSize = 1");
}

#[test]
fn missing_topology_subleaf_is_added_once() {
    let mut c = synthetic();
    let before = c.as_slice().len();
    normalize_cpuid(&mut c, 1, 2).unwrap();
    // 0xB.1 and 0x1F.1 added.
    assert_eq!(c.as_slice().len(), before + 2);
    normalize_cpuid(&mut c, 1, 2).unwrap();
    assert_eq!(c.as_slice().len(), before + 2);
}

#[test]
fn no_topology_leaf_is_invented() {
    let mut c = CpuId::from_entries(&[leaf(0, 0, [0xA, 0, 0, 0]), leaf(1, 0, [0; 4])]).unwrap();
    normalize_cpuid(&mut c, 0, 4).unwrap();
    assert_eq!(c.as_slice().len(), 2);
}

#[test]
fn invalid_ids_are_rejected() {
    let mut c = synthetic();
    assert!(matches!(
        normalize_cpuid(&mut c, 0, 0),
        Err(Error::CpuidVcpu {
            vcpu_id: 0,
            num_cpus: 0
        })
    ));
    assert!(matches!(
        normalize_cpuid(&mut c, 4, 4),
        Err(Error::CpuidVcpu { .. })
    ));
}
