//! MP table (Intel MP spec 1.4): tells the guest its vCPUs, the ISA bus and the IOAPIC.
//!
//! Written at [`MPTABLE_START`] (start of the EBDA, where Linux looks for it): the
//! floating pointer, immediately followed by the configuration table with, in order,
//! one processor entry per vCPU, an ISA bus entry, the IOAPIC entry, 24 I/O interrupt
//! entries (ISA IRQ n -> IOAPIC pin n) and two local interrupt entries
//! (ExtINT -> LINT0, NMI -> LINT1). There is no extended table.

use std::mem::size_of;

use vm_memory::{ByteValued, Bytes, GuestAddress};

use crate::layout::{HIMEM_START, IOAPIC_START, IRQ_MAX, LAPIC_START, MPTABLE_START};
use crate::mpspec::*;
use crate::{mem_err, Error, GuestMemoryMmap, Result};

/// Most vCPUs the table describes: APIC ids 0..=253, the IOAPIC takes id `num_cpus`,
/// and 0xFF is the broadcast id.
pub const MAX_CPUS: u8 = 254;
/// Local APIC version reported for every vCPU (integrated xAPIC).
pub const APIC_VERSION: u8 = 0x14;
/// IOAPIC version (82093AA-compatible, as emulated by KVM).
pub const IOAPIC_VERSION: u8 = 0x11;
/// CPU signature in processor entries: family 6, model 0xF, stepping 1.
pub const CPU_SIGNATURE: u32 = (6 << 8) | (0xF << 4) | 1;
/// CPU feature flags in processor entries: FPU (bit 0) and on-chip APIC (bit 9).
pub const CPU_FEATURES: u32 = (1 << 0) | (1 << 9);
/// Bus id of the ISA bus.
pub const ISA_BUS_ID: u8 = 0;
/// Local APIC id meaning "all local APICs".
pub const ALL_LAPICS: u8 = 0xFF;

const OEM_ID: [u8; 8] = *b"MICROVM ";
const PRODUCT_ID: [u8; 12] = *b"MICROVM KVM ";

/// Size in bytes of the floating pointer plus configuration table for `num_cpus` vCPUs.
pub fn mptable_size(num_cpus: u8) -> usize {
    size_of::<MpfIntel>() + base_table_len(num_cpus)
}

fn base_table_len(num_cpus: u8) -> usize {
    size_of::<MpcTable>()
        + usize::from(num_cpus) * size_of::<MpcCpu>()
        + size_of::<MpcBus>()
        + size_of::<MpcIoapic>()
        + (IRQ_MAX as usize + 1) * size_of::<MpcIntsrc>()
        + 2 * size_of::<MpcLintsrc>()
}

// The largest table must end below 1 MiB.
const _: () = assert!(
    MPTABLE_START as usize
        + 16
        + 44
        + MAX_CPUS as usize * 20
        + 8
        + 8
        + (IRQ_MAX as usize + 1) * 8
        + 2 * 8
        <= HIMEM_START as usize
);

/// Value that makes the bytes of `data` plus the checksum sum to 0 (mod 256).
pub fn checksum(data: &[u8]) -> u8 {
    0u8.wrapping_sub(data.iter().fold(0u8, |acc, b| acc.wrapping_add(*b)))
}

fn push<T: ByteValued>(buf: &mut Vec<u8>, value: T) {
    buf.extend_from_slice(value.as_slice());
}

/// Entries of the configuration table (after the header) and their count.
fn table_entries(num_cpus: u8) -> (Vec<u8>, u16) {
    let mut buf = Vec::new();
    let mut count = 0u16;
    for cpu in 0..num_cpus {
        let bsp = if cpu == 0 { CPU_BOOTPROCESSOR } else { 0 };
        push(
            &mut buf,
            MpcCpu {
                entry_type: MP_PROCESSOR,
                apicid: cpu,
                apicver: APIC_VERSION,
                cpuflag: CPU_ENABLED | bsp,
                cpufeature: CPU_SIGNATURE,
                featureflag: CPU_FEATURES,
                reserved: [0; 2],
            },
        );
        count += 1;
    }
    push(
        &mut buf,
        MpcBus {
            entry_type: MP_BUS,
            busid: ISA_BUS_ID,
            bustype: *b"ISA   ",
        },
    );
    let ioapic_id = num_cpus;
    push(
        &mut buf,
        MpcIoapic {
            entry_type: MP_IOAPIC,
            apicid: ioapic_id,
            apicver: IOAPIC_VERSION,
            flags: MPC_APIC_USABLE,
            apicaddr: IOAPIC_START as u32,
        },
    );
    count += 2;
    for irq in 0..=IRQ_MAX as u8 {
        push(
            &mut buf,
            MpcIntsrc {
                entry_type: MP_INTSRC,
                irqtype: MP_INT,
                irqflag: MP_IRQ_DEFAULT,
                srcbus: ISA_BUS_ID,
                srcbusirq: irq,
                dstapic: ioapic_id,
                dstirq: irq,
            },
        );
        count += 1;
    }
    for (irqtype, lint) in [(MP_EXTINT, 0), (MP_NMI, 1)] {
        push(
            &mut buf,
            MpcLintsrc {
                entry_type: MP_LINTSRC,
                irqtype,
                irqflag: MP_IRQ_DEFAULT,
                srcbusid: ISA_BUS_ID,
                srcbusirq: 0,
                destapic: ALL_LAPICS,
                destapiclint: lint,
            },
        );
        count += 1;
    }
    (buf, count)
}

/// Bytes of the MP floating pointer and configuration table for `num_cpus` vCPUs,
/// to be placed at [`MPTABLE_START`].
pub fn build_mptable(num_cpus: u8) -> Result<Vec<u8>> {
    if num_cpus == 0 || num_cpus > MAX_CPUS {
        return Err(Error::MptableCpuCount(num_cpus));
    }
    let table_addr = MPTABLE_START + size_of::<MpfIntel>() as u64;
    let (entries, count) = table_entries(num_cpus);

    let mut header = MpcTable {
        signature: MPC_SIGNATURE,
        // At most 44 + 254 * 20 + 224 bytes: fits in u16.
        length: (size_of::<MpcTable>() + entries.len()) as u16,
        spec: MP_SPEC_REV,
        checksum: 0,
        oem: OEM_ID,
        productid: PRODUCT_ID,
        oemptr: 0,
        oemsize: 0,
        oemcount: count,
        lapic: LAPIC_START as u32,
        ext_length: 0,
        ext_checksum: checksum(&[]),
        reserved: 0,
    };
    let mut table = header.as_slice().to_vec();
    table.extend_from_slice(&entries);
    header.checksum = checksum(&table);

    let mut mpf = MpfIntel {
        signature: MPF_SIGNATURE,
        physptr: table_addr as u32,
        length: 1,
        specification: MP_SPEC_REV,
        ..Default::default()
    };
    mpf.checksum = checksum(mpf.as_slice());

    let mut out = Vec::with_capacity(mptable_size(num_cpus));
    push(&mut out, mpf);
    push(&mut out, header);
    out.extend_from_slice(&entries);
    Ok(out)
}

/// Writes the MP table for `num_cpus` vCPUs (1..=[`MAX_CPUS`]) at [`MPTABLE_START`].
pub fn setup_mptable(mem: &GuestMemoryMmap, num_cpus: u8) -> Result<()> {
    let bytes = build_mptable(num_cpus)?;
    let addr = GuestAddress(MPTABLE_START);
    mem.write_slice(&bytes, addr)
        .map_err(mem_err("MP table", addr))
}

#[cfg(test)]
mod tests;
