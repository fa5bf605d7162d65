//! The virtio-mmio register window: a sequence of reads and writes of any width at any
//! offset (resets, out-of-order feature negotiation, queue set-up with odd sizes and
//! addresses, notifies), with an rng, block or net device behind it. Guest memory is
//! poked between accesses so that notified queues find something to chew on.
#![no_main]

use devices::virtio::block::Block;
use devices::virtio::net::{default_mac, Net};
use devices::virtio::rng::Rng;
use devices::virtio::VirtioDevice;
use devices::BusDevice;
use libfuzzer_sys::fuzz_target;
use microvm_fuzz::{addr, drain, fake_tap, guest_memory, memfd, Driver, Input};
use vm_memory::{Bytes, GuestAddress};

/// Registers worth hitting often (offsets of the virtio-mmio layout).
const REGS: [u64; 22] = [
    0x000, 0x004, 0x008, 0x00c, 0x010, 0x014, 0x020, 0x024, 0x030, 0x034, 0x038, 0x044, 0x050,
    0x060, 0x064, 0x070, 0x080, 0x084, 0x090, 0x094, 0x0a0, 0x0fc,
];

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mem = guest_memory();
    let kind = input.u8() % 3;
    let mut peer = None;
    let mut disk = None;
    let dev: Box<dyn VirtioDevice> = match kind {
        0 => Box::new(Rng::default()),
        1 => {
            let f = memfd("fuzz-disk", &[], 4096);
            disk = Some(f.try_clone().unwrap());
            Box::new(Block::new(0, f, 4096, false))
        }
        _ => {
            let (tap, p) = fake_tap();
            peer = Some(p);
            Box::new(Net::new(tap, default_mac(0)))
        }
    };
    let mut d = Driver::new(dev, mem.clone(), "virtio-fuzz0");
    // At most 512 operations per input.
    for _ in 0..512 {
        if input.is_empty() {
            break;
        }
        let op = input.u8();
        let offset = if op & 0x10 != 0 {
            u64::from(input.u16() % 0x1000)
        } else {
            REGS[usize::from(input.u8()) % REGS.len()]
        };
        let width = [4usize, 4, 4, 1, 2, 8, 3, 0][usize::from(op >> 5)];
        match op % 8 {
            0..=2 => {
                let v = input.u64().to_le_bytes();
                d.t.write(offset, &v[..width]);
            }
            3 | 4 => {
                let mut b = [0u8; 8];
                d.t.read(offset, &mut b[..width]);
            }
            5 => d.t.notify(usize::from(input.u8() % 4)),
            6 => d.t.host_fd_ready(),
            _ => {
                // Poke guest memory: a few bytes at a steered address.
                let a = addr(&mut input);
                let n = usize::from(input.u8() % 32);
                let bytes = input.bytes(n);
                let _ = mem.write_slice(bytes, GuestAddress(a));
            }
        }
        if let Some(p) = &peer {
            if op & 0x08 != 0 {
                // A frame arrives on the TAP.
                let n = usize::from(input.u8()) * 8;
                let frame = input.bytes(n);
                // SAFETY: writing frame.len() bytes from frame.
                unsafe {
                    libc::write(
                        std::os::fd::AsRawFd::as_raw_fd(p),
                        frame.as_ptr().cast(),
                        frame.len(),
                    )
                };
            }
            drain(p);
        }
        d.drain_events();
    }
    if let Some(f) = disk {
        assert_eq!(f.metadata().unwrap().len(), 4096, "the disk changed size");
    }
});
