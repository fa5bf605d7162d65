//! The e820 memory map handed to the guest in the zero page.

use linux_loader::loader::bootparam::boot_e820_entry;

use crate::layout::{EBDA_START, HIMEM_START, MMIO_GAP_END};
use crate::memory::{check_mem_size, low_ram_end};
use crate::Result;

/// e820 type of usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type of reserved memory.
pub const E820_RESERVED: u32 = 2;

/// One e820 range `[addr, addr + size)` of type `mem_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// [`E820_RAM`] or [`E820_RESERVED`].
    pub mem_type: u32,
}

impl E820Entry {
    /// End address (exclusive).
    pub fn end(&self) -> u64 {
        self.addr + self.size
    }
}

impl From<E820Entry> for boot_e820_entry {
    fn from(e: E820Entry) -> Self {
        boot_e820_entry {
            addr: e.addr,
            size: e.size,
            r#type: e.mem_type,
        }
    }
}

/// The e820 map of a guest with `mem_size` bytes of RAM (checked like
/// [`ram_regions`](crate::memory::ram_regions)).
///
/// - usable `[0, EBDA_START)`;
/// - reserved `[EBDA_START, 1 MiB)`: EBDA with the MP table, VGA hole and BIOS area;
/// - usable `[1 MiB, min(end, 3 GiB))`;
/// - usable `[4 GiB, 4 GiB + rest)` when RAM crosses the MMIO gap.
///
/// The MMIO gap itself is not listed, so the guest sees it as a hole.
pub fn e820_map(mem_size: u64) -> Result<Vec<E820Entry>> {
    check_mem_size(mem_size)?;
    let low_end = low_ram_end(mem_size);
    let mut map = vec![
        E820Entry {
            addr: 0,
            size: EBDA_START,
            mem_type: E820_RAM,
        },
        E820Entry {
            addr: EBDA_START,
            size: HIMEM_START - EBDA_START,
            mem_type: E820_RESERVED,
        },
        E820Entry {
            addr: HIMEM_START,
            size: low_end - HIMEM_START,
            mem_type: E820_RAM,
        },
    ];
    if mem_size > low_end {
        map.push(E820Entry {
            addr: MMIO_GAP_END,
            size: mem_size - low_end,
            mem_type: E820_RAM,
        });
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn entry(addr: u64, size: u64, mem_type: u32) -> E820Entry {
        E820Entry {
            addr,
            size,
            mem_type,
        }
    }

    fn is_ram(map: &[E820Entry], addr: u64) -> bool {
        map.iter()
            .any(|e| e.mem_type == E820_RAM && e.addr <= addr && addr < e.end())
    }

    #[test]
    fn map_for_128_mib() {
        assert_eq!(
            e820_map(128 * MIB).unwrap(),
            vec![
                entry(0, 0x9_FC00, 1),
                entry(0x9_FC00, 0x6_0400, 2),
                entry(0x10_0000, 0x800_0000 - 0x10_0000, 1),
            ]
        );
    }

    #[test]
    fn map_for_3_gib_stops_at_the_gap() {
        let map = e820_map(3 * GIB).unwrap();
        assert_eq!(map.len(), 3);
        assert_eq!(map[2], entry(0x10_0000, 0xC000_0000 - 0x10_0000, 1));
        assert!(!is_ram(&map, 0xC000_0000));
        assert!(is_ram(&map, 0xBFFF_FFFF));
    }

    #[test]
    fn map_for_5_gib_skips_the_gap() {
        let map = e820_map(5 * GIB).unwrap();
        assert_eq!(
            map,
            vec![
                entry(0, 0x9_FC00, 1),
                entry(0x9_FC00, 0x6_0400, 2),
                entry(0x10_0000, 0xBFF0_0000, 1),
                entry(0x1_0000_0000, 0x8000_0000, 1),
            ]
        );
        for addr in [
            0xC000_0000,
            0xD000_0000,
            0xFEC0_0000,
            0xFEE0_0000,
            0xFFFF_FFFF,
        ] {
            assert!(!is_ram(&map, addr), "{addr:#x} must not be RAM");
        }
        // Total usable RAM is the RAM size minus the reserved EBDA..1 MiB window.
        let usable: u64 = map
            .iter()
            .filter(|e| e.mem_type == E820_RAM)
            .map(|e| e.size)
            .sum();
        assert_eq!(usable, 5 * GIB - (0x10_0000 - 0x9_FC00));
    }

    #[test]
    fn mp_table_and_bios_area_are_reserved() {
        let map = e820_map(64 * MIB).unwrap();
        for addr in [0x9_FC00, 0xA_0000, 0xF_0000, 0xF_FFFF] {
            assert!(!is_ram(&map, addr));
        }
        // Boot structures and the trampoline area stay usable RAM.
        for addr in [0x7000, 0x9000, 0x1_0000, 0x2_0000] {
            assert!(is_ram(&map, addr));
        }
    }

    #[test]
    fn converts_to_zero_page_entry() {
        let raw: boot_e820_entry = entry(0x10_0000, 0x1000, E820_RAM).into();
        assert_eq!({ raw.addr }, 0x10_0000);
        assert_eq!({ raw.size }, 0x1000);
        assert_eq!({ raw.r#type }, 1);
    }

    #[test]
    fn invalid_size_is_rejected() {
        assert!(e820_map(0).is_err());
    }
}
