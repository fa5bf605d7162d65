//! ACPI tables for guests that find their hardware through ACPI, as stock distribution
//! kernels do (Debian's are built without `CONFIG_X86_MPPARSE` and
//! `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES`).
//!
//! Built with rust-vmm's `acpi_tables` crate and written to `[ACPI_START, ACPI_END)`
//! (e820-reserved, inside the BIOS area where Linux also scans for the RSDP):
//!
//! - RSDP (revision 2) -> XSDT -> FADT, MADT;
//! - FADT: hardware-reduced ACPI, no CMOS RTC, an i8042, no VGA, no MSI; power-off through
//!   the sleep control/status registers at [`PM_SLEEP_CONTROL_PORT`], reset through the
//!   i8042 (0xFE to port 0x64);
//! - MADT: one local APIC per vCPU, the IOAPIC, identity interrupt source overrides for the
//!   ISA interrupts in use (KVM's default routing sends ISA IRQ n to IOAPIC pin n), LINT1 NMI;
//! - DSDT ([`dsdt`]): COM1, the i8042, every virtio-mmio device, and `\_S5_`.

mod dsdt;
mod madt;

use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;
use vm_memory::{Bytes, GuestAddress};

use crate::{Error, GuestMemoryMmap, Result};

pub use dsdt::dsdt_aml;
pub use madt::madt;

/// Guest address of the RSDP; the other tables follow it.
pub const ACPI_START: u64 = 0x000E_0000;
/// End (exclusive) of the area the tables may use: the 1 MiB line.
pub const ACPI_END: u64 = 0x0010_0000;
/// Port of the FADT sleep control register: the guest writes `SLP_EN | SLP_TYP << 2` here.
pub const PM_SLEEP_CONTROL_PORT: u16 = 0x600;
/// Port of the FADT sleep status register (reads 0; writes of `WAK_STS` are ignored).
pub const PM_SLEEP_STATUS_PORT: u16 = 0x601;
/// Number of ports the power-management device covers.
pub const PM_PORTS_LEN: u64 = 2;
/// `SLP_TYP` of the S5 (soft-off) state, as given in `\_S5_`.
pub const SLP_TYP_S5: u8 = 5;
/// Sleep control register bit that starts the transition (`SLP_EN`).
pub const SLP_EN: u8 = 1 << 5;

const OEM_ID: [u8; 6] = *b"MICROV";
const OEM_REVISION: u32 = 1;
/// FADT `IAPC_BOOT_ARCH`: an 8042 is present (ACPI 6.5, 5.2.9.3).
const IAPC_8042: u16 = 1 << 1;
/// FADT `IAPC_BOOT_ARCH`: no VGA.
const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;
/// FADT `IAPC_BOOT_ARCH`: no MSI (there is no PCI).
const IAPC_MSI_NOT_SUPPORTED: u16 = 1 << 3;
/// FADT `IAPC_BOOT_ARCH`: no CMOS RTC; the guest's wall clock comes from kvm-clock.
const IAPC_CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;
/// The i8042 command that pulses the CPU reset line, used as the FADT reset register.
const I8042_COMMAND_PORT: u64 = 0x64;
const I8042_RESET_VALUE: u8 = 0xfe;

/// A legacy port-I/O device the DSDT describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortDevice {
    /// First port.
    pub base: u16,
    /// Number of ports.
    pub len: u8,
    /// ISA interrupt (= GSI).
    pub irq: u32,
}

/// A virtio-mmio device the DSDT describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioDevice {
    /// Base of its register window.
    pub base: u64,
    /// Size of the window.
    pub size: u64,
    /// Its GSI (edge-triggered, active high).
    pub irq: u32,
}

/// What the tables describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiConfig {
    /// Number of vCPUs (APIC ids `0..num_cpus`).
    pub num_cpus: u8,
    /// The 8250 UART.
    pub com1: PortDevice,
    /// The i8042: data port `base`, command/status port `base + 4`.
    pub i8042: PortDevice,
    /// virtio-mmio devices, in slot order.
    pub virtio: Vec<MmioDevice>,
}

/// One table and where it goes.
struct Placed {
    addr: u64,
    bytes: Vec<u8>,
}

fn aml_bytes(table: &dyn Aml) -> Vec<u8> {
    let mut bytes = Vec::new();
    table.to_aml_bytes(&mut bytes);
    bytes
}

/// 16-byte alignment for every table, as firmware usually does.
fn align16(addr: u64) -> u64 {
    (addr + 15) & !15
}

/// The FADT of a hardware-reduced platform pointing at the DSDT at `dsdt_addr`.
fn fadt(dsdt_addr: u64) -> Vec<u8> {
    let io_byte = |port: u64| GAS::new(AddressSpace::SystemIo, 8, 0, AccessSize::ByteAccess, port);
    let mut builder = FADTBuilder::new(OEM_ID, *b"MVM FACP", OEM_REVISION)
        .dsdt_64(dsdt_addr)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::ResetRegSup)
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton);
    builder.iapc_boot_arch =
        (IAPC_8042 | IAPC_VGA_NOT_PRESENT | IAPC_MSI_NOT_SUPPORTED | IAPC_CMOS_RTC_NOT_PRESENT)
            .into();
    builder.reset_reg = io_byte(I8042_COMMAND_PORT);
    builder.reset_value = I8042_RESET_VALUE;
    builder.sleep_control_reg = io_byte(u64::from(PM_SLEEP_CONTROL_PORT));
    builder.sleep_status_reg = io_byte(u64::from(PM_SLEEP_STATUS_PORT));
    builder.hypervisor_vendor_identity = u64::from_le_bytes(*b"MICROVM\0").into();
    aml_bytes(&builder.finalize())
}

/// Lays out every table from [`ACPI_START`]: RSDP, XSDT, DSDT, FADT, MADT.
fn layout(cfg: &AcpiConfig) -> Result<Vec<Placed>> {
    let rsdp_len = Rsdp::len() as u64;
    let xsdt_addr = align16(ACPI_START + rsdp_len);
    // The XSDT has a fixed size: header + 2 entries.
    let xsdt_len = 36 + 2 * 8;
    let dsdt_addr = align16(xsdt_addr + xsdt_len);
    let mut dsdt = Sdt::new(*b"DSDT", 36, 6, OEM_ID, *b"MVM DSDT", OEM_REVISION);
    dsdt.append_slice(&dsdt_aml(cfg));
    let dsdt = dsdt.as_slice().to_vec();
    let fadt_addr = align16(dsdt_addr + dsdt.len() as u64);
    let fadt = fadt(dsdt_addr);
    let madt_addr = align16(fadt_addr + fadt.len() as u64);
    let madt = aml_bytes(&madt(cfg.num_cpus, &[0, cfg.com1.irq, cfg.i8042.irq]));
    let end = madt_addr + madt.len() as u64;
    if end > ACPI_END {
        return Err(Error::AcpiTooLarge {
            size: end - ACPI_START,
            max: ACPI_END - ACPI_START,
        });
    }
    let mut xsdt = XSDT::new(OEM_ID, *b"MVM XSDT", OEM_REVISION);
    xsdt.add_entry(fadt_addr);
    xsdt.add_entry(madt_addr);
    let xsdt = aml_bytes(&xsdt);
    debug_assert_eq!(xsdt.len() as u64, xsdt_len);
    Ok(vec![
        Placed {
            addr: ACPI_START,
            bytes: aml_bytes(&Rsdp::new(OEM_ID, xsdt_addr)),
        },
        Placed {
            addr: xsdt_addr,
            bytes: xsdt,
        },
        Placed {
            addr: dsdt_addr,
            bytes: dsdt,
        },
        Placed {
            addr: fadt_addr,
            bytes: fadt,
        },
        Placed {
            addr: madt_addr,
            bytes: madt,
        },
    ])
}

/// Writes the tables for `cfg` into guest memory; returns the RSDP's address, for
/// `boot_params.acpi_rsdp_addr` and `hvm_start_info.rsdp_paddr`.
pub fn setup_acpi(mem: &GuestMemoryMmap, cfg: &AcpiConfig) -> Result<u64> {
    for table in layout(cfg)? {
        let addr = GuestAddress(table.addr);
        mem.write_slice(&table.bytes, addr)
            .map_err(crate::mem_err("ACPI tables", addr))?;
    }
    Ok(ACPI_START)
}

#[cfg(test)]
mod tests;
