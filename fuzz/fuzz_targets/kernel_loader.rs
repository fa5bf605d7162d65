//! The kernel loader (`vmm::kernel::load_kernel`: ELF vmlinux or bzImage with microvm's
//! header checks, then linux-loader) on the input bytes as an in-memory file, into a
//! 16 MiB guest; then, if it loaded, the initramfs placement (`arch::initrd_address` and
//! `load_initramfs`) and the command line with fuzzed sizes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use microvm_fuzz::{memfd, Input};
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm::config::KernelSource;
use vmm::kernel::{load_cmdline, load_initramfs, load_kernel};

const MEM_SIZE: u64 = 16 << 20;

fn mem() -> &'static GuestMemoryMmap {
    static MEM: OnceLock<GuestMemoryMmap> = OnceLock::new();
    MEM.get_or_init(|| {
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)]).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    // The first 16 bytes steer the initramfs and command line; the rest is the kernel.
    let mut input = Input::new(data);
    let params = input.bytes(16);
    let kernel = input.rest();
    let mut p = Input::new(params);
    let mem_size = match p.u8() % 4 {
        0 => MEM_SIZE,
        1 => u64::from(p.u32()) << 12,
        2 => p.u64(),
        _ => arch::memory::MIN_MEM_SIZE,
    };
    let initrd_size = u64::from(p.u32() % (8 << 20));
    let addr_max = p.u32();
    let kernel_end = u64::from(p.u32());
    let cmdline_len = usize::from(p.u16() % 4096);

    // Placement on its own, with any numbers: an address it returns must fit.
    if let Ok(a) = arch::initrd_address(mem_size, initrd_size, addr_max, kernel_end) {
        let end = a.0 + initrd_size;
        assert!(a.0 >= kernel_end && a.0 >= arch::layout::HIMEM_START);
        assert!(end <= mem_size && end <= u64::from(addr_max) + 1);
        assert!(end <= arch::layout::MMIO_GAP_START);
        assert_eq!(a.0 % 4096, 0);
    }

    let src = KernelSource::Embedded {
        name: "fuzz",
        bytes: &[],
    };
    let file = memfd("fuzz-kernel", kernel, 0);
    let Ok(loaded) = load_kernel(mem(), &src, file, MEM_SIZE) else {
        return;
    };
    assert!(loaded.entry < MEM_SIZE || loaded.format == vmm::kernel::KernelFormat::Elf);
    if initrd_size > 0 {
        // A sparse memfd of the fuzzed size (at most 8 MiB, never written).
        let initrd = memfd("fuzz-initrd", &[], initrd_size);
        if let Ok((addr, size)) = load_initramfs(
            mem(),
            std::path::Path::new("fuzz-initrd"),
            initrd,
            &loaded,
            MEM_SIZE,
        ) {
            assert!(addr >= loaded.end && addr + size <= MEM_SIZE);
        }
    }
    let cmdline = "x".repeat(cmdline_len);
    let _ = load_cmdline(mem(), &cmdline, &loaded);
});
