//! The DSDT's AML: the devices a guest cannot probe by itself, and the S5 sleep type.

use acpi_tables::aml::{
    Device, EISAName, Interrupt, Memory32Fixed, Name, Package, Path, ResourceTemplate, Scope, IO,
    ONE,
};
use acpi_tables::Aml;

use super::{AcpiConfig, MmioDevice, PortDevice, SLP_TYP_S5};

/// An ISA interrupt as the devices raise it: edge-triggered, active high, exclusive.
fn isa_interrupt(irq: u32) -> Interrupt {
    Interrupt::new(true, true, false, false, irq)
}

/// COM1 (`PNP0501`): 8 ports and its IRQ.
fn com1(dev: &PortDevice) -> Vec<u8> {
    let io = IO::new(dev.base, dev.base, 1, dev.len);
    let irq = isa_interrupt(dev.irq);
    let crs = ResourceTemplate::new(vec![&io, &irq]);
    let hid = EISAName::new("PNP0501");
    let ddn = "COM1";
    bytes(&Device::new(
        Path::new("COM1"),
        vec![
            &Name::new(Path::new("_HID"), &hid),
            &Name::new(Path::new("_UID"), &0u8),
            &Name::new(Path::new("_DDN"), &ddn),
            &Name::new(Path::new("_CRS"), &crs),
        ],
    ))
}

/// The i8042 keyboard controller (`PNP0303`): data port, command port, IRQ. No mouse
/// (`PNP0F13`) is described, so Linux does not probe the AUX port.
fn i8042(dev: &PortDevice) -> Vec<u8> {
    let data = IO::new(dev.base, dev.base, 1, 1);
    let command = IO::new(dev.base + 4, dev.base + 4, 1, 1);
    let irq = isa_interrupt(dev.irq);
    let crs = ResourceTemplate::new(vec![&data, &command, &irq]);
    let hid = EISAName::new("PNP0303");
    bytes(&Device::new(
        Path::new("PS2K"),
        vec![
            &Name::new(Path::new("_HID"), &hid),
            &Name::new(Path::new("_UID"), &0u8),
            &Name::new(Path::new("_CRS"), &crs),
        ],
    ))
}

/// virtio-mmio device `index` (`LNRO0005`, what Linux's virtio_mmio driver matches).
fn virtio(index: usize, dev: &MmioDevice) -> Vec<u8> {
    // Every window is below 4 GiB (arch::layout) and a few KiB long.
    let window = Memory32Fixed::new(true, dev.base as u32, dev.size as u32);
    let irq = isa_interrupt(dev.irq);
    let crs = ResourceTemplate::new(vec![&window, &irq]);
    let hid = "LNRO0005";
    let uid = index as u32;
    let name = format!("V{index:03}");
    bytes(&Device::new(
        Path::new(&name),
        vec![
            &Name::new(Path::new("_HID"), &hid),
            &Name::new(Path::new("_UID"), &uid),
            &Name::new(Path::new("_CCA"), &ONE),
            &Name::new(Path::new("_CRS"), &crs),
        ],
    ))
}

fn bytes(aml: &dyn Aml) -> Vec<u8> {
    let mut out = Vec::new();
    aml.to_aml_bytes(&mut out);
    out
}

/// A pre-serialised AML fragment, to put device objects of different types in one scope.
struct Raw(Vec<u8>);

impl Aml for Raw {
    fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
        sink.vec(&self.0);
    }
}

/// The DSDT body (without its header) for `cfg`.
pub fn dsdt_aml(cfg: &AcpiConfig) -> Vec<u8> {
    let mut devices = vec![Raw(com1(&cfg.com1)), Raw(i8042(&cfg.i8042))];
    devices.extend(
        cfg.virtio
            .iter()
            .enumerate()
            .map(|(i, dev)| Raw(virtio(i, dev))),
    );
    let children: Vec<&dyn Aml> = devices.iter().map(|d| d as &dyn Aml).collect();
    let sb = Scope::new(Path::new("\\_SB_"), children);
    // \_S5_: SLP_TYP for soft-off, what the guest writes to the sleep control register.
    let s5_typ = SLP_TYP_S5;
    let s5 = Name::new(Path::new("\\_S5_"), &Package::new(vec![&s5_typ]));
    let mut out = bytes(&sb);
    out.extend(bytes(&s5));
    out
}
