//! Identity-mapped boot page tables: the first 1 GiB with 2 MiB pages.

use vm_memory::{Bytes, GuestAddress};

use crate::layout::{PDPT_START, PD_START, PML4_START};
use crate::{mem_err, GuestMemoryMmap, Result};

/// Page table entry flag: present.
pub const PTE_PRESENT: u64 = 1 << 0;
/// Page table entry flag: writable.
pub const PTE_RW: u64 = 1 << 1;
/// Page directory entry flag: maps a 2 MiB page.
pub const PTE_PS: u64 = 1 << 7;
/// Entries per page table.
pub const ENTRIES: usize = 512;
/// Size of a large page mapped by one PD entry.
pub const LARGE_PAGE_SIZE: u64 = 2 << 20;

/// One 4 KiB page table.
pub type PageTable = [u64; ENTRIES];

/// The three boot tables `(pml4, pdpt, pd)`: `PML4[0]` -> PDPT, `PDPT[0]` -> PD,
/// `PD[i]` maps `[i * 2 MiB, (i + 1) * 2 MiB)` to itself, read/write.
pub fn identity_tables() -> (PageTable, PageTable, PageTable) {
    let mut pml4 = [0u64; ENTRIES];
    let mut pdpt = [0u64; ENTRIES];
    let mut pd = [0u64; ENTRIES];
    pml4[0] = PDPT_START | PTE_PRESENT | PTE_RW;
    pdpt[0] = PD_START | PTE_PRESENT | PTE_RW;
    for (i, entry) in pd.iter_mut().enumerate() {
        *entry = (i as u64 * LARGE_PAGE_SIZE) | PTE_PRESENT | PTE_RW | PTE_PS;
    }
    (pml4, pdpt, pd)
}

fn write_table(
    mem: &GuestMemoryMmap,
    table: &PageTable,
    at: u64,
    what: &'static str,
) -> Result<()> {
    let bytes: Vec<u8> = table.iter().flat_map(|e| e.to_le_bytes()).collect();
    let addr = GuestAddress(at);
    mem.write_slice(&bytes, addr).map_err(mem_err(what, addr))
}

/// Writes the identity page tables at [`PML4_START`], [`PDPT_START`] and [`PD_START`]
/// (whole pages, so stale contents are cleared).
pub fn write_page_tables(mem: &GuestMemoryMmap) -> Result<()> {
    let (pml4, pdpt, pd) = identity_tables();
    write_table(mem, &pml4, PML4_START, "PML4")?;
    write_table(mem, &pdpt, PDPT_START, "PDPT")?;
    write_table(mem, &pd, PD_START, "page directory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::ram_regions;

    #[test]
    fn entries_point_down_the_hierarchy() {
        let (pml4, pdpt, pd) = identity_tables();
        assert_eq!(pml4[0], 0xA003);
        assert_eq!(pdpt[0], 0xB003);
        assert!(pml4[1..].iter().all(|&e| e == 0));
        assert!(pdpt[1..].iter().all(|&e| e == 0));
        assert_eq!(pd[0], 0x83);
        assert_eq!(pd[1], 0x20_0083);
        assert_eq!(pd[511], 0x3FE0_0083);
        for (i, &e) in pd.iter().enumerate() {
            assert_eq!(e, ((i as u64) * 0x20_0000) | 0x83);
        }
    }

    /// Walks the tables in guest memory like the MMU for a 2 MiB mapping.
    fn translate(mem: &GuestMemoryMmap, va: u64) -> Option<u64> {
        let pml4e: u64 = mem
            .read_obj(GuestAddress(0x9000 + 8 * ((va >> 39) & 0x1FF)))
            .unwrap();
        if pml4e & 1 == 0 {
            return None;
        }
        let pdpte: u64 = mem
            .read_obj(GuestAddress((pml4e & !0xFFF) + 8 * ((va >> 30) & 0x1FF)))
            .unwrap();
        if pdpte & 1 == 0 {
            return None;
        }
        let pde: u64 = mem
            .read_obj(GuestAddress((pdpte & !0xFFF) + 8 * ((va >> 21) & 0x1FF)))
            .unwrap();
        if pde & 1 == 0 || pde & 0x80 == 0 {
            return None;
        }
        Some((pde & !0x1F_FFFF) | (va & 0x1F_FFFF))
    }

    #[test]
    fn guest_tables_identity_map_first_gib() {
        let mem = GuestMemoryMmap::from_ranges(&ram_regions(16 << 20).unwrap()).unwrap();
        mem.write_obj(0xDEADu64, GuestAddress(0x9008)).unwrap();
        write_page_tables(&mem).unwrap();
        for va in [0, 0x7000, 0x10_0000, 0x123_4567, 0x3FFF_FFFF] {
            assert_eq!(translate(&mem, va), Some(va));
        }
        assert_eq!(translate(&mem, 0x4000_0000), None);
        let cleared: u64 = mem.read_obj(GuestAddress(0x9008)).unwrap();
        assert_eq!(cleared, 0);
    }
}
