//! The ACPI power-management registers of a hardware-reduced platform: the FADT's sleep
//! control register (offset 0) and sleep status register (offset 1), on two ports.
//!
//! Linux powers off by writing `SLP_EN | SLP_TYP << 2` to the control register, with
//! `SLP_TYP` taken from the DSDT's `\_S5_`. That write triggers `poweroff_evt`: microvm
//! ends with exit 0. Any other write (another sleep state, garbage) is logged at debug
//! level and ignored; both registers read 0.

use vm_superio::Trigger;

use crate::{BusDevice, EventFdTrigger};

/// Offset of the sleep control register.
const SLEEP_CONTROL: u64 = 0;
/// `SLP_EN`: start the transition to the sleep state in `SLP_TYP`.
const SLP_EN: u8 = 1 << 5;
/// `SLP_TYP` field of the sleep control register.
const SLP_TYP_SHIFT: u8 = 2;
const SLP_TYP_MASK: u8 = 0x7;

/// The sleep control/status register pair.
pub struct AcpiPm {
    poweroff_evt: EventFdTrigger,
    s5_typ: u8,
}

impl AcpiPm {
    /// Registers that trigger `poweroff_evt` when the guest enters the sleep type `s5_typ`
    /// (the value the DSDT gives for `\_S5_`).
    pub fn new(poweroff_evt: EventFdTrigger, s5_typ: u8) -> Self {
        AcpiPm {
            poweroff_evt,
            s5_typ,
        }
    }
}

impl BusDevice for AcpiPm {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&value) = data.first() else { return };
        let typ = (value >> SLP_TYP_SHIFT) & SLP_TYP_MASK;
        if offset == SLEEP_CONTROL && value & SLP_EN != 0 && typ == self.s5_typ {
            log::info!("the guest powered off (ACPI S5)");
            if let Err(e) = self.poweroff_evt.trigger() {
                log::error!("acpi: cannot signal the guest's power-off: {e}");
            }
        } else {
            log::debug!("acpi: ignoring write {value:#04x} to PM register {offset}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

    fn pm() -> (AcpiPm, EventFd) {
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        (
            AcpiPm::new(EventFdTrigger::new(evt.try_clone().unwrap()), 5),
            evt,
        )
    }

    #[test]
    fn s5_with_slp_en_powers_off() {
        let (mut pm, evt) = pm();
        // What ACPICA's acpi_hw_extended_sleep writes: clear WAK_STS, then SLP_TYP|SLP_EN.
        pm.write(1, &[0x80]);
        assert!(evt.read().is_err());
        pm.write(0, &[(5 << 2) | SLP_EN]);
        assert_eq!(evt.read().unwrap(), 1);
    }

    #[test]
    fn other_states_and_garbage_are_ignored() {
        let (mut pm, evt) = pm();
        for v in 0..=255u8 {
            if v & SLP_EN != 0 && (v >> 2) & 7 == 5 {
                continue;
            }
            pm.write(0, &[v]);
            pm.write(1, &[v]);
            pm.write(7, &[v]);
        }
        pm.write(0, &[]);
        pm.write(1, &[5 << 2 | SLP_EN]);
        assert!(evt.read().is_err(), "only S5 on the control register");
        let mut b = [0xffu8; 2];
        pm.read(0, &mut b);
        assert_eq!(b, [0, 0]);
    }
}
