//! Per-vCPU CPUID normalization of KVM_GET_SUPPORTED_CPUID.
//!
//! The topology presented is one package with `num_cpus` cores of one thread each;
//! vCPU `i` has (x2)APIC id `i`, matching the MP table.

use kvm_bindings::{kvm_cpuid_entry2, CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX};

use crate::{Error, Result};

/// Leaf 1 ECX bit 31: running under a hypervisor.
pub const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 EDX bit 28: `EBX[23:16]` (logical processor count) is valid.
pub const LEAF1_EDX_HTT: u32 = 1 << 28;
/// Leaf 6 ECX bit 3: IA32_ENERGY_PERF_BIAS, which KVM does not emulate.
pub const LEAF6_ECX_EPB: u32 = 1 << 3;
/// Extended topology level type: SMT.
pub const LEVEL_TYPE_SMT: u32 = 1;
/// Extended topology level type: core.
pub const LEVEL_TYPE_CORE: u32 = 2;

/// Bits needed to number `n` items (ceil(log2(n)), 0 for n <= 1).
fn count_order(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

/// Registers of sub-leaf `index` of leaf 0xB/0x1F: `(eax, ebx, ecx, edx)`.
fn topology_regs(index: u32, vcpu_id: u8, num_cpus: u8) -> (u32, u32, u32, u32) {
    let x2apic_id = u32::from(vcpu_id);
    match index {
        // SMT level: one thread per core, so no APIC id bits for threads.
        0 => (0, 1, (LEVEL_TYPE_SMT << 8), x2apic_id),
        // Core level: shift to the package id covers all cores.
        1 => (
            count_order(u32::from(num_cpus)),
            u32::from(num_cpus),
            (LEVEL_TYPE_CORE << 8) | 1,
            x2apic_id,
        ),
        // No more levels: invalid level type, ECX[7:0] echoes the sub-leaf.
        _ => (0, 0, index & 0xFF, x2apic_id),
    }
}

fn set_topology(entry: &mut kvm_cpuid_entry2, vcpu_id: u8, num_cpus: u8) {
    let (eax, ebx, ecx, edx) = topology_regs(entry.index, vcpu_id, num_cpus);
    entry.eax = eax;
    entry.ebx = ebx;
    entry.ecx = ecx;
    entry.edx = edx;
    entry.flags |= KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
}

fn has_leaf(cpuid: &CpuId, function: u32, index: u32) -> bool {
    cpuid
        .as_slice()
        .iter()
        .any(|e| e.function == function && e.index == index)
}

fn normalize_entry(entry: &mut kvm_cpuid_entry2, vcpu_id: u8, num_cpus: u8) {
    let n = u32::from(num_cpus);
    match entry.function {
        1 => {
            entry.ebx = (entry.ebx & 0x0000_FFFF) | (u32::from(vcpu_id) << 24) | (n << 16);
            entry.ecx |= LEAF1_ECX_HYPERVISOR;
            if num_cpus > 1 {
                entry.edx |= LEAF1_EDX_HTT;
            } else {
                entry.edx &= !LEAF1_EDX_HTT;
            }
        }
        4 if entry.eax & 0x1F != 0 => {
            // EAX[31:26]: cores per package - 1; EAX[25:14]: threads sharing the cache - 1
            // (one per core for L1/L2, the whole package for L3 and up).
            let cores = (n - 1).min(0x3F);
            let level = (entry.eax >> 5) & 0x7;
            let sharing = if level >= 3 { (n - 1).min(0xFFF) } else { 0 };
            entry.eax = (entry.eax & 0x3FFF) | (sharing << 14) | (cores << 26);
        }
        6 => entry.ecx &= !LEAF6_ECX_EPB,
        0xB | 0x1F => set_topology(entry, vcpu_id, num_cpus),
        0x8000_0008 => {
            // AMD: ECX[7:0] cores - 1, ECX[15:12] APIC id bits for the cores.
            entry.ecx = (entry.ecx & !0xF0FF) | (count_order(n) << 12) | (n - 1);
        }
        0x8000_001E => {
            // AMD: extended APIC id, core id (one thread per core), node 0 of 1.
            entry.eax = u32::from(vcpu_id);
            entry.ebx = (entry.ebx & !0xFFFF) | u32::from(vcpu_id);
            entry.ecx &= !0x7FF;
        }
        _ => {}
    }
}

/// Adapts the CPUID table from KVM_GET_SUPPORTED_CPUID to vCPU `vcpu_id` of `num_cpus`.
///
/// - leaf 1: `EBX[31:24]` initial APIC id, `EBX[23:16]` logical processor count, HTT when
///   `num_cpus > 1`, ECX hypervisor bit; TSC-deadline and the rest as KVM reports;
/// - leaf 4: `EAX[31:26]` cores per package - 1, `EAX[25:14]` sharing per cache level;
/// - leaf 6: ECX EPB cleared;
/// - leaves 0xB and 0x1F (if present): SMT level with 1 thread, core level with
///   `num_cpus` cores, EDX = x2APIC id; sub-leaves 0 and 1 are added if KVM left them out;
/// - leaves 0x8000_0008 / 0x8000_001E (AMD): core count and ids;
/// - everything else, including the KVM leaves at 0x4000_0000, is left as KVM gives it.
pub fn normalize_cpuid(cpuid: &mut CpuId, vcpu_id: u8, num_cpus: u8) -> Result<()> {
    if num_cpus == 0 || vcpu_id >= num_cpus {
        return Err(Error::CpuidVcpu { vcpu_id, num_cpus });
    }
    for entry in cpuid.as_mut_slice() {
        normalize_entry(entry, vcpu_id, num_cpus);
    }
    for function in [0xB, 0x1F] {
        if !has_leaf(cpuid, function, 0) && !has_leaf(cpuid, function, 1) {
            continue;
        }
        for index in [0, 1] {
            if has_leaf(cpuid, function, index) {
                continue;
            }
            let mut entry = kvm_cpuid_entry2 {
                function,
                index,
                ..Default::default()
            };
            set_topology(&mut entry, vcpu_id, num_cpus);
            cpuid
                .push(entry)
                .map_err(|_| Error::CpuidFull { function, index })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
