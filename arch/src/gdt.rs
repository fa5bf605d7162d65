//! Boot GDT and IDT.
//!
//! The GDT follows the Linux boot GDT's selectors for code and data (`__BOOT_CS` 0x10,
//! `__BOOT_DS` 0x18). Only four descriptors fit between [`GDT_START`] and [`IDT_START`],
//! so the TSS (which VMX requires TR to describe, and which Linux replaces at once) is
//! in the otherwise unused slot 1, selector 0x08.

use kvm_bindings::kvm_segment;
use vm_memory::{Bytes, GuestAddress};

use crate::layout::{GDT_ENTRIES, GDT_START, IDT_START};
use crate::{mem_err, GuestMemoryMmap, Result};

/// Selector of the TSS descriptor (GDT slot 1).
pub const BOOT_TSS: u16 = 0x08;
/// Selector of the 64-bit code descriptor (GDT slot 2, Linux `__BOOT_CS`).
pub const BOOT_CS: u16 = 0x10;
/// Selector of the data descriptor (GDT slot 3, Linux `__BOOT_DS`).
pub const BOOT_DS: u16 = 0x18;
/// Size in bytes of the boot IDT: one 16-byte long-mode gate, not present.
pub const IDT_SIZE: u64 = 16;

/// Code segment type: execute/read, accessed.
const TYPE_CODE_XRA: u8 = 0xB;
/// Data segment type: read/write, accessed.
const TYPE_DATA_RWA: u8 = 0x3;
/// System segment type: 64-bit TSS, busy.
const TYPE_TSS_BUSY: u8 = 0xB;

fn flat_segment(selector: u16, type_: u8, s: u8, l: u8, db: u8) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xFFFF_FFFF,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db,
        s,
        l,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Flat 64-bit code segment (L=1, D=0), selector [`BOOT_CS`].
pub fn code_segment() -> kvm_segment {
    flat_segment(BOOT_CS, TYPE_CODE_XRA, 1, 1, 0)
}

/// Flat data segment (D/B=1), selector [`BOOT_DS`].
pub fn data_segment() -> kvm_segment {
    flat_segment(BOOT_DS, TYPE_DATA_RWA, 1, 0, 1)
}

/// Busy TSS at base 0, selector [`BOOT_TSS`].
pub fn tss_segment() -> kvm_segment {
    flat_segment(BOOT_TSS, TYPE_TSS_BUSY, 0, 0, 0)
}

/// Encodes a segment as an 8-byte descriptor (Intel SDM vol. 3, 3.4.5).
///
/// `seg.limit` is in bytes as KVM holds it; with `g` set it is stored in 4 KiB units.
pub fn encode_descriptor(seg: &kvm_segment) -> u64 {
    let base = seg.base & 0xFFFF_FFFF;
    let limit = u64::from(if seg.g != 0 {
        seg.limit >> 12
    } else {
        seg.limit
    }) & 0xF_FFFF;
    let access = u64::from(seg.type_ & 0xF)
        | u64::from(seg.s & 1) << 4
        | u64::from(seg.dpl & 3) << 5
        | u64::from(seg.present & 1) << 7;
    let flags = u64::from(seg.avl & 1)
        | u64::from(seg.l & 1) << 1
        | u64::from(seg.db & 1) << 2
        | u64::from(seg.g & 1) << 3;
    (limit & 0xFFFF)
        | (base & 0xFF_FFFF) << 16
        | access << 40
        | (limit >> 16) << 48
        | flags << 52
        | (base >> 24) << 56
}

/// The boot GDT: null, TSS, code, data (slot = selector / 8).
pub fn boot_gdt() -> [u64; GDT_ENTRIES] {
    [
        0,
        encode_descriptor(&tss_segment()),
        encode_descriptor(&code_segment()),
        encode_descriptor(&data_segment()),
    ]
}

/// Writes the boot GDT at [`GDT_START`] and a zeroed IDT at [`IDT_START`].
pub fn write_gdt_idt(mem: &GuestMemoryMmap) -> Result<()> {
    for (i, entry) in boot_gdt().iter().enumerate() {
        let addr = GuestAddress(GDT_START + 8 * i as u64);
        mem.write_obj(*entry, addr).map_err(mem_err("GDT", addr))?;
    }
    let addr = GuestAddress(IDT_START);
    mem.write_slice(&[0u8; IDT_SIZE as usize], addr)
        .map_err(mem_err("IDT", addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::ram_regions;

    /// Decodes (base, raw 20-bit limit, access byte, flags nibble) by the SDM bit positions.
    fn decode(d: u64) -> (u32, u32, u8, u8) {
        let base = ((d >> 16) & 0xFF_FFFF) | ((d >> 56) << 24);
        let limit = (d & 0xFFFF) | ((d >> 48) & 0xF) << 16;
        (
            base as u32,
            limit as u32,
            (d >> 40) as u8,
            ((d >> 52) & 0xF) as u8,
        )
    }

    #[test]
    fn descriptors_match_linux_boot_gdt() {
        let gdt = boot_gdt();
        assert_eq!(gdt[0], 0);
        // GDT_ENTRY(0xa09b, 0, 0xfffff): 64-bit code, G=1, L=1, P=1, type 0xB.
        assert_eq!(gdt[2], 0x00AF_9B00_0000_FFFF);
        // GDT_ENTRY(0xc093, 0, 0xfffff): data, G=1, D/B=1, P=1, type 3.
        assert_eq!(gdt[3], 0x00CF_9300_0000_FFFF);
        // GDT_ENTRY(0x808b, 0, 0xfffff): busy TSS, G=1, P=1, S=0.
        assert_eq!(gdt[1], 0x008F_8B00_0000_FFFF);
    }

    #[test]
    fn descriptors_decode_to_intended_fields() {
        let gdt = boot_gdt();
        let (base, limit, access, flags) = decode(gdt[(BOOT_CS >> 3) as usize]);
        assert_eq!((base, limit), (0, 0xF_FFFF));
        assert_eq!(access, 0x9B, "P=1 DPL=0 S=1 type=execute/read/accessed");
        assert_eq!(flags, 0b1010, "G=1 D=0 L=1 AVL=0");
        let (base, limit, access, flags) = decode(gdt[(BOOT_DS >> 3) as usize]);
        assert_eq!((base, limit), (0, 0xF_FFFF));
        assert_eq!(access, 0x93, "P=1 DPL=0 S=1 type=read/write/accessed");
        assert_eq!(flags, 0b1100, "G=1 D/B=1 L=0");
        let (_, _, access, flags) = decode(gdt[(BOOT_TSS >> 3) as usize]);
        assert_eq!(access, 0x8B, "P=1 S=0 type=busy TSS");
        assert_eq!(flags, 0b1000);
    }

    #[test]
    fn encodes_base_and_byte_granular_limit() {
        let seg = kvm_segment {
            base: 0x1234_5678,
            limit: 0xA_BCDE,
            type_: 0x2,
            present: 1,
            s: 1,
            dpl: 3,
            ..Default::default()
        };
        let d = encode_descriptor(&seg);
        assert_eq!(d, 0x120A_F234_5678_BCDE);
        assert_eq!(decode(d), (0x1234_5678, 0xA_BCDE, 0xF2, 0));
    }

    #[test]
    fn gdt_and_idt_written_to_guest_memory() {
        let mem = GuestMemoryMmap::from_ranges(&ram_regions(2 << 20).unwrap()).unwrap();
        mem.write_slice(&[0xAAu8; 16], GuestAddress(0x520)).unwrap();
        write_gdt_idt(&mem).unwrap();
        let code: u64 = mem.read_obj(GuestAddress(0x510)).unwrap();
        assert_eq!(code, 0x00AF_9B00_0000_FFFF);
        let data: u64 = mem.read_obj(GuestAddress(0x518)).unwrap();
        assert_eq!(data, 0x00CF_9300_0000_FFFF);
        let mut idt = [0xFFu8; 16];
        mem.read_slice(&mut idt, GuestAddress(0x520)).unwrap();
        assert_eq!(idt, [0u8; 16]);
    }
}
