//! Guest RAM regions around the 32-bit MMIO gap.

use vm_memory::GuestAddress;

use crate::layout::{HIMEM_START, MMIO_GAP_END, MMIO_GAP_START};
use crate::{Error, Result};

/// Smallest accepted guest RAM size (2 MiB): everything below [`HIMEM_START`] that the
/// layout uses, plus 1 MiB of high memory at the kernel load address.
pub const MIN_MEM_SIZE: u64 = 2 * HIMEM_START;
/// Largest accepted guest RAM size (1 TiB); well below any x86 host's physical address width.
pub const MAX_MEM_SIZE: u64 = 1 << 40;
/// Guest RAM sizes must be a multiple of this (4 KiB).
pub const PAGE_SIZE: u64 = 0x1000;

/// Checks a guest RAM size against [`MIN_MEM_SIZE`], [`MAX_MEM_SIZE`] and [`PAGE_SIZE`].
pub fn check_mem_size(mem_size: u64) -> Result<()> {
    if mem_size < MIN_MEM_SIZE {
        return Err(Error::MemoryTooSmall(mem_size));
    }
    if mem_size > MAX_MEM_SIZE {
        return Err(Error::MemoryTooLarge(mem_size));
    }
    if !mem_size.is_multiple_of(PAGE_SIZE) {
        return Err(Error::MemoryNotPageAligned(mem_size));
    }
    Ok(())
}

/// End (exclusive) of the RAM below the MMIO gap for a guest of `mem_size` bytes.
pub fn low_ram_end(mem_size: u64) -> u64 {
    mem_size.min(MMIO_GAP_START)
}

/// Guest RAM regions `(start, size)` for `mem_size` bytes of RAM.
///
/// One region `[0, mem_size)` if it ends at or below [`MMIO_GAP_START`], otherwise
/// `[0, 3 GiB)` and `[4 GiB, 4 GiB + mem_size - 3 GiB)`, so no RAM is in the MMIO gap.
pub fn ram_regions(mem_size: u64) -> Result<Vec<(GuestAddress, usize)>> {
    check_mem_size(mem_size)?;
    let low = low_ram_end(mem_size);
    // Sizes are at most MAX_MEM_SIZE (1 TiB), which fits in usize on x86_64.
    let mut regions = vec![(GuestAddress(0), low as usize)];
    if mem_size > low {
        regions.push((GuestAddress(MMIO_GAP_END), (mem_size - low) as usize));
    }
    Ok(regions)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn small_memory_is_one_region() {
        assert_eq!(
            ram_regions(128 * MIB).unwrap(),
            vec![(GuestAddress(0), 128 << 20)]
        );
        assert_eq!(
            ram_regions(2 * MIB).unwrap(),
            vec![(GuestAddress(0), 2 << 20)]
        );
    }

    #[test]
    fn exactly_three_gib_is_one_region() {
        assert_eq!(
            ram_regions(3 * GIB).unwrap(),
            vec![(GuestAddress(0), 0xC000_0000)]
        );
    }

    #[test]
    fn memory_crossing_the_gap_is_split() {
        assert_eq!(
            ram_regions(5 * GIB).unwrap(),
            vec![
                (GuestAddress(0), 0xC000_0000),
                (GuestAddress(0x1_0000_0000), 0x8000_0000)
            ]
        );
        // One page past 3 GiB lands at 4 GiB.
        assert_eq!(
            ram_regions(3 * GIB + 0x1000).unwrap(),
            vec![
                (GuestAddress(0), 0xC000_0000),
                (GuestAddress(0x1_0000_0000), 0x1000)
            ]
        );
    }

    #[test]
    fn bad_sizes_are_rejected() {
        assert!(matches!(ram_regions(0), Err(Error::MemoryTooSmall(0))));
        assert!(matches!(
            ram_regions(2 * MIB - 0x1000),
            Err(Error::MemoryTooSmall(_))
        ));
        assert!(matches!(
            ram_regions((1 << 40) + 0x1000),
            Err(Error::MemoryTooLarge(_))
        ));
        assert!(matches!(
            ram_regions(64 * MIB + 1),
            Err(Error::MemoryNotPageAligned(_))
        ));
        assert!(ram_regions(1 << 40).is_ok());
    }
}
