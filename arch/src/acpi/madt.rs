//! The MADT ("APIC"): local APICs, the IOAPIC, interrupt source overrides and the LINT1 NMI.

use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, ProcessorLocalApic, MADT,
};
use acpi_tables::{Aml, AmlSink};
use zerocopy::{Immutable, IntoBytes};

use crate::layout::{IOAPIC_START, LAPIC_START};

/// MADT structure type of an interrupt source override (ACPI 6.5, 5.2.12.5).
const TYPE_INTERRUPT_SOURCE_OVERRIDE: u8 = 2;
/// MADT structure type of a local APIC NMI source (5.2.12.7).
const TYPE_LOCAL_APIC_NMI: u8 = 4;
/// Processor UID meaning "every processor" in a local APIC NMI structure.
const ALL_PROCESSORS: u8 = 0xff;

/// Interrupt source override: ISA IRQ `source` is wired to `gsi` (`acpi_tables` has none).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable)]
struct InterruptSourceOverride {
    r#type: u8,
    length: u8,
    bus: u8,
    source: u8,
    gsi: u32,
    /// MPS INTI flags; 0 = conforms to the bus (ISA: edge-triggered, active high).
    flags: u16,
}

/// Local APIC NMI: which LINT pin of which processors carries NMIs.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable)]
struct LocalApicNmi {
    r#type: u8,
    length: u8,
    processor_uid: u8,
    flags: u16,
    lint: u8,
}

impl Aml for InterruptSourceOverride {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(self.as_bytes());
    }
}

impl Aml for LocalApicNmi {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(self.as_bytes());
    }
}

/// The MADT for `num_cpus` vCPUs (APIC id = index), with identity overrides for `isa_irqs`.
///
/// Identity overrides are not redundant: on a hardware-reduced platform Linux sets up no
/// legacy IRQs by itself, so an ISA interrupt (COM1's 4, the i8042's 1) is only mapped to its
/// IOAPIC pin when the MADT names it.
pub fn madt(num_cpus: u8, isa_irqs: &[u32]) -> MADT {
    let mut madt = MADT::new(
        super::OEM_ID,
        *b"MVM APIC",
        super::OEM_REVISION,
        LocalInterruptController::Address(LAPIC_START as u32),
    );
    for cpu in 0..num_cpus {
        madt.add_structure(ProcessorLocalApic::new(cpu, cpu, EnabledStatus::Enabled));
    }
    madt.add_structure(IoApic::new(0, IOAPIC_START as u32, 0));
    for &irq in isa_irqs {
        madt.add_structure(InterruptSourceOverride {
            r#type: TYPE_INTERRUPT_SOURCE_OVERRIDE,
            length: 10,
            bus: 0,
            source: irq as u8,
            gsi: irq,
            flags: 0,
        });
    }
    madt.add_structure(LocalApicNmi {
        r#type: TYPE_LOCAL_APIC_NMI,
        length: 6,
        processor_uid: ALL_PROCESSORS,
        flags: 0,
        lint: 1,
    });
    madt
}
