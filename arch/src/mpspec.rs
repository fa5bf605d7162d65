//! Intel MultiProcessor Specification 1.4 structures (chapter 4), byte-exact.

use vm_memory::ByteValued;

/// Floating pointer signature.
pub const MPF_SIGNATURE: [u8; 4] = *b"_MP_";
/// Configuration table header signature.
pub const MPC_SIGNATURE: [u8; 4] = *b"PCMP";
/// Specification revision 1.4.
pub const MP_SPEC_REV: u8 = 4;

/// Entry type: processor.
pub const MP_PROCESSOR: u8 = 0;
/// Entry type: bus.
pub const MP_BUS: u8 = 1;
/// Entry type: I/O APIC.
pub const MP_IOAPIC: u8 = 2;
/// Entry type: I/O interrupt assignment.
pub const MP_INTSRC: u8 = 3;
/// Entry type: local interrupt assignment.
pub const MP_LINTSRC: u8 = 4;

/// Processor flag: enabled.
pub const CPU_ENABLED: u8 = 1;
/// Processor flag: bootstrap processor.
pub const CPU_BOOTPROCESSOR: u8 = 2;
/// I/O APIC flag: enabled.
pub const MPC_APIC_USABLE: u8 = 1;

/// Interrupt type: vectored interrupt (from the I/O APIC).
pub const MP_INT: u8 = 0;
/// Interrupt type: NMI.
pub const MP_NMI: u8 = 1;
/// Interrupt type: external (8259) interrupt.
pub const MP_EXTINT: u8 = 3;
/// Interrupt flags: polarity and trigger mode conform to the bus.
pub const MP_IRQ_DEFAULT: u16 = 0;

/// MP floating pointer structure (16 bytes).
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MpfIntel {
    /// "_MP_".
    pub signature: [u8; 4],
    /// Physical address of the configuration table.
    pub physptr: u32,
    /// Length in 16-byte paragraphs (1).
    pub length: u8,
    /// Spec revision (4).
    pub specification: u8,
    /// Makes the structure's bytes sum to 0.
    pub checksum: u8,
    /// Feature byte 1: 0 = a configuration table is present.
    pub feature1: u8,
    /// Feature byte 2: bit 7 IMCR present (0: virtual wire mode).
    pub feature2: u8,
    /// Feature bytes 3-5, reserved.
    pub feature3: [u8; 3],
}

/// MP configuration table header (44 bytes).
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MpcTable {
    /// "PCMP".
    pub signature: [u8; 4],
    /// Base table length in bytes (header plus entries).
    pub length: u16,
    /// Spec revision (4).
    pub spec: u8,
    /// Makes the base table's bytes sum to 0.
    pub checksum: u8,
    /// OEM id, space padded.
    pub oem: [u8; 8],
    /// Product id, space padded.
    pub productid: [u8; 12],
    /// OEM table pointer (0: none).
    pub oemptr: u32,
    /// OEM table size.
    pub oemsize: u16,
    /// Number of base table entries.
    pub oemcount: u16,
    /// Local APIC address.
    pub lapic: u32,
    /// Extended table length in bytes.
    pub ext_length: u16,
    /// Makes the extended table's bytes sum to 0.
    pub ext_checksum: u8,
    /// Reserved.
    pub reserved: u8,
}

/// Processor entry (20 bytes).
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MpcCpu {
    /// [`MP_PROCESSOR`].
    pub entry_type: u8,
    /// Local APIC id.
    pub apicid: u8,
    /// Local APIC version.
    pub apicver: u8,
    /// [`CPU_ENABLED`] | [`CPU_BOOTPROCESSOR`].
    pub cpuflag: u8,
    /// CPUID signature: stepping 3:0, model 7:4, family 11:8.
    pub cpufeature: u32,
    /// CPUID.1:EDX feature flags.
    pub featureflag: u32,
    /// Reserved.
    pub reserved: [u32; 2],
}

/// Bus entry (8 bytes).
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MpcBus {
    /// [`MP_BUS`].
    pub entry_type: u8,
    /// Bus id.
    pub busid: u8,
    /// Bus type string, space padded (e.g. "ISA   ").
    pub bustype: [u8; 6],
}

/// I/O APIC entry (8 bytes).
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MpcIoapic {
    /// [`MP_IOAPIC`].
    pub entry_type: u8,
    /// I/O APIC id.
    pub apicid: u8,
    /// I/O APIC version.
    pub apicver: u8,
    /// [`MPC_APIC_USABLE`].
    pub flags: u8,
    /// MMIO base address.
    pub apicaddr: u32,
}

/// I/O interrupt assignment entry (8 bytes).
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MpcIntsrc {
    /// [`MP_INTSRC`].
    pub entry_type: u8,
    /// Interrupt type ([`MP_INT`], ...).
    pub irqtype: u8,
    /// Polarity (bits 1:0) and trigger mode (bits 3:2).
    pub irqflag: u16,
    /// Source bus id.
    pub srcbus: u8,
    /// Source bus IRQ.
    pub srcbusirq: u8,
    /// Destination I/O APIC id.
    pub dstapic: u8,
    /// Destination I/O APIC pin (INTIN#).
    pub dstirq: u8,
}

/// Local interrupt assignment entry (8 bytes).
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MpcLintsrc {
    /// [`MP_LINTSRC`].
    pub entry_type: u8,
    /// Interrupt type ([`MP_EXTINT`], [`MP_NMI`], ...).
    pub irqtype: u8,
    /// Polarity (bits 1:0) and trigger mode (bits 3:2).
    pub irqflag: u16,
    /// Source bus id.
    pub srcbusid: u8,
    /// Source bus IRQ.
    pub srcbusirq: u8,
    /// Destination local APIC id (0xFF: all).
    pub destapic: u8,
    /// Destination LINTIN# (0 or 1).
    pub destapiclint: u8,
}

// SAFETY: repr(C, packed) struct of integers and byte arrays: no padding, and every bit
// pattern is a valid value.
unsafe impl ByteValued for MpfIntel {}
// SAFETY: repr(C, packed) struct of integers and byte arrays: no padding, and every bit
// pattern is a valid value.
unsafe impl ByteValued for MpcTable {}
// SAFETY: repr(C, packed) struct of integers and integer arrays: no padding, and every bit
// pattern is a valid value.
unsafe impl ByteValued for MpcCpu {}
// SAFETY: repr(C, packed) struct of integers and byte arrays: no padding, and every bit
// pattern is a valid value.
unsafe impl ByteValued for MpcBus {}
// SAFETY: repr(C, packed) struct of integers: no padding, and every bit pattern is valid.
unsafe impl ByteValued for MpcIoapic {}
// SAFETY: repr(C, packed) struct of integers: no padding, and every bit pattern is valid.
unsafe impl ByteValued for MpcIntsrc {}
// SAFETY: repr(C, packed) struct of integers: no padding, and every bit pattern is valid.
unsafe impl ByteValued for MpcLintsrc {}

// Sizes fixed by the MP specification 1.4, table 4-1 and section 4.3.
const _: () = assert!(std::mem::size_of::<MpfIntel>() == 16);
const _: () = assert!(std::mem::size_of::<MpcTable>() == 44);
const _: () = assert!(std::mem::size_of::<MpcCpu>() == 20);
const _: () = assert!(std::mem::size_of::<MpcBus>() == 8);
const _: () = assert!(std::mem::size_of::<MpcIoapic>() == 8);
const _: () = assert!(std::mem::size_of::<MpcIntsrc>() == 8);
const _: () = assert!(std::mem::size_of::<MpcLintsrc>() == 8);
