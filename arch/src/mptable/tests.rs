//! MP table tests: decode the bytes at the offsets given by the MP spec 1.4 (chapter 4),
//! independently of the structs used to build them.

use super::*;
use crate::memory::ram_regions;

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

/// Reads the table from guest memory the way a guest does and checks it.
fn check_table(num_cpus: u8) {
    let mem = GuestMemoryMmap::from_ranges(&ram_regions(64 << 20).unwrap()).unwrap();
    setup_mptable(&mem, num_cpus).unwrap();
    let n = usize::from(num_cpus);

    // Floating pointer at the start of the EBDA (639 KiB).
    let mut mpf = [0u8; 16];
    mem.read_slice(&mut mpf, GuestAddress(0x9_FC00)).unwrap();
    assert_eq!(&mpf[0..4], b"_MP_");
    let physptr = u32_at(&mpf, 4);
    assert_eq!(physptr, 0x9_FC10);
    assert_eq!(mpf[8], 1, "length in paragraphs");
    assert_eq!(mpf[9], 4, "spec rev 1.4");
    assert_eq!(mpf[11], 0, "feature1: table present, no default config");
    assert_eq!(sum(&mpf), 0, "floating pointer checksum");

    // Configuration table header.
    let mut hdr = [0u8; 44];
    mem.read_slice(&mut hdr, GuestAddress(u64::from(physptr)))
        .unwrap();
    assert_eq!(&hdr[0..4], b"PCMP");
    let len = usize::from(u16_at(&hdr, 4));
    let expected_entries = n + 1 + 1 + 24 + 2;
    assert_eq!(len, 44 + 20 * n + 8 + 8 + 24 * 8 + 2 * 8);
    assert_eq!(hdr[6], 4, "spec rev");
    assert_eq!(
        usize::from(u16_at(&hdr, 34)),
        expected_entries,
        "entry count"
    );
    assert_eq!(u32_at(&hdr, 36), 0xFEE0_0000, "local APIC address");
    assert_eq!(u16_at(&hdr, 40), 0, "no extended table");
    assert_eq!(hdr[42], 0, "extended checksum of nothing");
    assert_eq!(u32_at(&hdr, 28), 0, "no OEM table");

    let mut table = vec![0u8; len];
    mem.read_slice(&mut table, GuestAddress(u64::from(physptr)))
        .unwrap();
    assert_eq!(sum(&table), 0, "base table checksum");
    assert!(u64::from(physptr) + len as u64 <= 0x10_0000);
    // Nothing was written past the table.
    let after: u8 = mem
        .read_obj(GuestAddress(u64::from(physptr) + len as u64))
        .unwrap();
    assert_eq!(after, 0);

    // Walk the entries by their type byte.
    let mut off = 44;
    let mut cpus = Vec::new();
    let mut buses = 0;
    let mut ioapics = Vec::new();
    let mut intsrcs = Vec::new();
    let mut lints = Vec::new();
    let mut count = 0;
    while off < len {
        let e = &table[off..];
        match e[0] {
            0 => {
                // apic id, version, flags, signature, features
                cpus.push((e[1], e[2], e[3], u32_at(e, 4), u32_at(e, 8)));
                off += 20;
            }
            1 => {
                assert_eq!(&e[2..8], b"ISA   ");
                assert_eq!(e[1], 0);
                buses += 1;
                off += 8;
            }
            2 => {
                ioapics.push((e[1], e[2], e[3], u32_at(e, 4)));
                off += 8;
            }
            3 => {
                // type, flags, src bus, src irq, dst apic, dst pin
                intsrcs.push((e[1], u16_at(e, 2), e[4], e[5], e[6], e[7]));
                off += 8;
            }
            4 => {
                lints.push((e[1], u16_at(e, 2), e[4], e[5], e[6], e[7]));
                off += 8;
            }
            t => panic!("unknown entry type {t} at offset {off}"),
        }
        count += 1;
    }
    assert_eq!(off, len);
    assert_eq!(count, expected_entries);

    assert_eq!(cpus.len(), n);
    for (i, &(id, ver, flags, sig, feat)) in cpus.iter().enumerate() {
        assert_eq!(usize::from(id), i, "APIC id = vCPU index");
        assert_eq!(ver, 0x14);
        let expected_flags = if i == 0 { 0b11 } else { 0b01 };
        assert_eq!(flags, expected_flags, "enabled, BSP only on cpu 0");
        assert_eq!((sig >> 8) & 0xF, 6, "family 6");
        assert_eq!(feat & (1 << 9), 1 << 9, "APIC feature flag");
        assert_eq!(feat & 1, 1, "FPU feature flag");
    }
    assert_eq!(buses, 1);
    assert_eq!(ioapics, vec![(num_cpus, 0x11, 1, 0xFEC0_0000)]);
    assert_eq!(intsrcs.len(), 24);
    for (irq, &(kind, flags, bus, src, dst, pin)) in intsrcs.iter().enumerate() {
        assert_eq!((kind, flags, bus), (0, 0, 0), "INT, conforming, ISA bus");
        assert_eq!(usize::from(src), irq);
        assert_eq!(dst, num_cpus, "routed to the IOAPIC");
        assert_eq!(usize::from(pin), irq);
    }
    assert_eq!(
        lints,
        vec![(3, 0, 0, 0, 0xFF, 0), (1, 0, 0, 0, 0xFF, 1)],
        "ExtINT on LINT0, NMI on LINT1 of all local APICs"
    );
}

#[test]
fn table_for_one_cpu() {
    check_table(1);
}

#[test]
fn table_for_two_cpus() {
    check_table(2);
}

#[test]
fn table_for_eight_cpus() {
    check_table(8);
}

#[test]
fn table_for_max_cpus_fits_below_1_mib() {
    check_table(MAX_CPUS);
    assert_eq!(mptable_size(MAX_CPUS), 16 + 44 + 254 * 20 + 224);
}

#[test]
fn exact_bytes_for_one_cpu() {
    let b = build_mptable(1).unwrap();
    assert_eq!(b.len(), 16 + 44 + 20 + 224);
    // Floating pointer: "_MP_", 0x0009FC10, 1, 4.
    assert_eq!(
        &b[..10],
        &[b'_', b'M', b'P', b'_', 0x10, 0xFC, 0x09, 0, 1, 4]
    );
    // Base table length 44 + 20 + 224 = 0x120.
    assert_eq!(&b[16 + 4..16 + 6], &[0x20, 0x01]);
    // First processor entry: type 0, APIC id 0, version 0x14, EN|BP.
    assert_eq!(&b[60..64], &[0, 0, 0x14, 3]);
    // IOAPIC entry after the CPU (20) and bus (8): type 2, id 1, ver 0x11, usable, 0xFEC00000.
    assert_eq!(&b[88..96], &[2, 1, 0x11, 1, 0, 0, 0xC0, 0xFE]);
}

#[test]
fn invalid_cpu_counts_are_rejected() {
    assert!(matches!(build_mptable(0), Err(Error::MptableCpuCount(0))));
    assert!(matches!(
        build_mptable(255),
        Err(Error::MptableCpuCount(255))
    ));
    let mem = GuestMemoryMmap::from_ranges(&ram_regions(2 << 20).unwrap()).unwrap();
    assert!(setup_mptable(&mem, 0).is_err());
}

#[test]
fn checksum_makes_sum_zero() {
    assert_eq!(checksum(&[]), 0);
    assert_eq!(checksum(&[1, 2, 3]), 0xFA);
    assert_eq!(checksum(&[0x80, 0x80]), 0);
}
