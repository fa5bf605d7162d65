//! virtio-blk request processing over fuzzed rings and buffers, driven the way the
//! device thread drives it: the driver handshake through the registers, then queue
//! notifications (`MmioTransport::notify`), with resets and avail.idx jumps in between.
//! The disk is a small memfd; its size must never change.
#![no_main]

use devices::virtio::block::{Block, SECTOR_SIZE};
use libfuzzer_sys::fuzz_target;
use microvm_fuzz::{guest_memory, memfd, reopen_read_only, write_data, Driver, Input, Layout};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.u8();
    let sectors = u64::from(input.u8() % 64) + 1; // at most 32 KiB of disk
    let size = sectors * SECTOR_SIZE;
    let read_only = flags & 1 != 0;
    let disk = memfd("fuzz-disk", &[0xa5; 512], size);
    let file = if read_only {
        reopen_read_only(&disk)
    } else {
        disk.try_clone().unwrap()
    };
    let mem = guest_memory();
    let mut d = Driver::new(
        Box::new(Block::new(0, file, size, read_only)),
        mem.clone(),
        "virtio-fuzz0",
    );
    let layout = Layout::from_input(&mut input, 0);
    d.negotiate();
    layout.setup(&mut d, 0);
    d.driver_ok();
    layout.fill(&mem, &mut input);
    write_data(&mem, &mut input);
    for _ in 0..8 {
        if input.is_empty() {
            break;
        }
        match input.u8() % 4 {
            0 => {
                // Reset and set the device up again.
                d.w(virtio_bindings::virtio_mmio::VIRTIO_MMIO_STATUS, 0);
                d.negotiate();
                layout.setup(&mut d, 0);
                d.driver_ok();
            }
            1 => layout.fill(&mem, &mut input),
            2 => layout.publish(&mem, &mut input),
            _ => write_data(&mem, &mut input),
        }
        d.t.notify(0);
        assert_eq!(
            disk.metadata().unwrap().len(),
            size,
            "the disk changed size"
        );
    }
    d.t.notify(0);
    d.drain_events();
    assert_eq!(
        disk.metadata().unwrap().len(),
        size,
        "the disk changed size"
    );
});
