//! Local APIC LINT0/LINT1 setup for virtual wire mode.

use kvm_bindings::kvm_lapic_state;
use kvm_ioctls::VcpuFd;

use crate::{kvm_err, Result};

/// Offset of the LVT LINT0 register in the local APIC page.
pub const APIC_LVT0: usize = 0x350;
/// Offset of the LVT LINT1 register in the local APIC page.
pub const APIC_LVT1: usize = 0x360;
/// LVT delivery mode: ExtINT (bits 10:8 = 0b111).
pub const APIC_MODE_EXTINT: u32 = 0x7;
/// LVT delivery mode: NMI (bits 10:8 = 0b100).
pub const APIC_MODE_NMI: u32 = 0x4;
const DELIVERY_MODE_MASK: u32 = 0x700;

/// Reads the little-endian 32-bit register at `offset` of the APIC page.
pub fn get_lapic_reg(state: &kvm_lapic_state, offset: usize) -> u32 {
    let mut bytes = [0u8; 4];
    for (b, r) in bytes.iter_mut().zip(&state.regs[offset..offset + 4]) {
        *b = *r as u8;
    }
    u32::from_le_bytes(bytes)
}

/// Writes the little-endian 32-bit register at `offset` of the APIC page.
pub fn set_lapic_reg(state: &mut kvm_lapic_state, offset: usize, value: u32) {
    for (r, b) in state.regs[offset..offset + 4]
        .iter_mut()
        .zip(value.to_le_bytes())
    {
        *r = b as _;
    }
}

fn with_delivery_mode(reg: u32, mode: u32) -> u32 {
    (reg & !DELIVERY_MODE_MASK) | (mode << 8)
}

/// Sets LINT0 to ExtINT and LINT1 to NMI, keeping the other LVT bits (mask, trigger...).
pub fn configure_lints(state: &mut kvm_lapic_state) {
    let lvt0 = get_lapic_reg(state, APIC_LVT0);
    set_lapic_reg(state, APIC_LVT0, with_delivery_mode(lvt0, APIC_MODE_EXTINT));
    let lvt1 = get_lapic_reg(state, APIC_LVT1);
    set_lapic_reg(state, APIC_LVT1, with_delivery_mode(lvt1, APIC_MODE_NMI));
}

/// Configures LINT0/LINT1 of `vcpu` (KVM_GET_LAPIC, then KVM_SET_LAPIC). Needs the
/// in-kernel irqchip.
pub fn setup_lapic(vcpu: &VcpuFd) -> Result<()> {
    let mut state = vcpu.get_lapic().map_err(kvm_err("KVM_GET_LAPIC"))?;
    configure_lints(&mut state);
    vcpu.set_lapic(&state).map_err(kvm_err("KVM_SET_LAPIC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lints_get_extint_and_nmi() {
        let mut state = kvm_lapic_state::default();
        // Reset value of the LVT registers: masked (bit 16).
        set_lapic_reg(&mut state, APIC_LVT0, 0x1_0000);
        set_lapic_reg(&mut state, APIC_LVT1, 0x1_0700);
        configure_lints(&mut state);
        assert_eq!(get_lapic_reg(&state, APIC_LVT0), 0x1_0700);
        assert_eq!(get_lapic_reg(&state, APIC_LVT1), 0x1_0400);
        // Little-endian bytes at 0x350: 00 07 01 00.
        assert_eq!(state.regs[0x351] as u8, 0x07);
        assert_eq!(state.regs[0x352] as u8, 0x01);
        assert_eq!(state.regs[0x361] as u8, 0x04);
    }
}
