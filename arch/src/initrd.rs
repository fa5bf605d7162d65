//! Placement of the initrd in guest memory.

use vm_memory::GuestAddress;

use crate::layout::HIMEM_START;
use crate::memory::{check_mem_size, low_ram_end, PAGE_SIZE};
use crate::{Error, Result};

/// Guest address for an initrd of `initrd_size` bytes.
///
/// Returns the highest page-aligned address `a` such that `[a, a + initrd_size)` ends
/// at or below both the end of RAM below the MMIO gap and `initrd_addr_max + 1`
/// (from the setup header, or [`DEFAULT_INITRD_ADDR_MAX`](crate::layout::DEFAULT_INITRD_ADDR_MAX)),
/// and starts at or above `kernel_end` (and [`HIMEM_START`]), so it never overlaps
/// the kernel. Like boot loaders do, this keeps the initrd as high as possible.
pub fn initrd_address(
    mem_size: u64,
    initrd_size: u64,
    initrd_addr_max: u32,
    kernel_end: u64,
) -> Result<GuestAddress> {
    check_mem_size(mem_size)?;
    if initrd_size == 0 {
        return Err(Error::InitrdEmpty);
    }
    let limit = low_ram_end(mem_size).min(u64::from(initrd_addr_max) + 1);
    let lowest = kernel_end.max(HIMEM_START);
    let too_big = || Error::InitrdDoesNotFit {
        size: initrd_size,
        kernel_end,
        limit,
    };
    let start = limit.checked_sub(initrd_size).ok_or_else(too_big)? & !(PAGE_SIZE - 1);
    if start < lowest {
        return Err(too_big());
    }
    Ok(GuestAddress(start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::DEFAULT_INITRD_ADDR_MAX;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn placed_at_top_of_ram() {
        // 128 MiB RAM, 4 MiB initrd, kernel ends at 20 MiB: initrd at 124 MiB.
        let a = initrd_address(128 * MIB, 4 * MIB, u32::MAX, 20 * MIB).unwrap();
        assert_eq!(a, GuestAddress(0x7C0_0000));
    }

    #[test]
    fn start_is_page_aligned_down() {
        // 0x1234 bytes below 128 MiB rounds down to 0x7FFE000.
        let a = initrd_address(128 * MIB, 0x1234, u32::MAX, 20 * MIB).unwrap();
        assert_eq!(a, GuestAddress(0x7FF_E000));
        assert!(a.0 + 0x1234 <= 128 * MIB);
    }

    #[test]
    fn respects_initrd_addr_max() {
        // 2 GiB RAM, default max 0x37FFFFFF: initrd must end at or below 0x38000000.
        let a = initrd_address(2 * GIB, 16 * MIB, DEFAULT_INITRD_ADDR_MAX, 32 * MIB).unwrap();
        assert_eq!(a, GuestAddress(0x3700_0000));
    }

    #[test]
    fn stays_below_the_mmio_gap() {
        // 8 GiB RAM and no initrd_addr_max limit: still below 3 GiB.
        let a = initrd_address(8 * GIB, 64 * MIB, u32::MAX, 32 * MIB).unwrap();
        assert_eq!(a, GuestAddress(0xC000_0000 - 64 * MIB));
    }

    #[test]
    fn exact_fit_above_kernel() {
        // Kernel ends at 100 MiB, 28 MiB initrd in 128 MiB: exactly fits at 100 MiB.
        let a = initrd_address(128 * MIB, 28 * MIB, u32::MAX, 100 * MIB).unwrap();
        assert_eq!(a, GuestAddress(100 * MIB));
    }

    #[test]
    fn overlap_with_kernel_is_an_error() {
        let err = initrd_address(128 * MIB, 28 * MIB + 1, u32::MAX, 100 * MIB).unwrap_err();
        assert!(matches!(
            err,
            Error::InitrdDoesNotFit {
                size,
                kernel_end,
                limit
            } if size == 28 * MIB + 1 && kernel_end == 100 * MIB && limit == 128 * MIB
        ));
    }

    #[test]
    fn too_big_and_empty_are_errors() {
        assert!(matches!(
            initrd_address(128 * MIB, 256 * MIB, u32::MAX, 2 * MIB),
            Err(Error::InitrdDoesNotFit { .. })
        ));
        assert!(matches!(
            initrd_address(128 * MIB, 0, u32::MAX, 2 * MIB),
            Err(Error::InitrdEmpty)
        ));
        // Below 1 MiB is never used even if the kernel "ends" lower.
        assert!(matches!(
            initrd_address(2 * MIB, MIB + 0x1000, u32::MAX, 0),
            Err(Error::InitrdDoesNotFit { .. })
        ));
        // initrd_addr_max below the kernel.
        assert!(initrd_address(GIB, MIB, 0x00FF_FFFF, 16 * MIB).is_err());
    }
}
