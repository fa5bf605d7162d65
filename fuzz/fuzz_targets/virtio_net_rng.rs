//! virtio-rng queue filling and virtio-net tx/rx over fuzzed rings, the net device's TAP
//! being one end of a socketpair whose other end receives tx frames and injects fuzzed rx
//! frames. Driven like the device threads drive them: `notify` for queue kicks,
//! `host_fd_ready` when the TAP is readable.
#![no_main]

use std::os::fd::AsRawFd;

use devices::virtio::net::{default_mac, Net, RX, TX};
use devices::virtio::rng::Rng;
use libfuzzer_sys::fuzz_target;
use microvm_fuzz::{drain, fake_tap, guest_memory, write_data, Driver, Input, Layout};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mem = guest_memory();
    if input.u8() & 1 == 0 {
        let mut d = Driver::new(Box::new(Rng::default()), mem.clone(), "virtio-fuzz0");
        let layout = Layout::from_input(&mut input, 0);
        d.negotiate();
        layout.setup(&mut d, 0);
        d.driver_ok();
        for _ in 0..8 {
            if input.is_empty() {
                break;
            }
            layout.fill(&mem, &mut input);
            d.t.notify(0);
            d.drain_events();
        }
        return;
    }
    let (tap, peer) = fake_tap();
    let mut d = Driver::new(
        Box::new(Net::new(tap, default_mac(0))),
        mem.clone(),
        "virtio-fuzz0",
    );
    let rx = Layout::from_input(&mut input, RX as u64);
    let tx = Layout::from_input(&mut input, TX as u64);
    d.negotiate();
    rx.setup(&mut d, RX as u32);
    tx.setup(&mut d, TX as u32);
    d.driver_ok();
    write_data(&mem, &mut input);
    for _ in 0..16 {
        if input.is_empty() {
            break;
        }
        match input.u8() % 6 {
            0 => {
                tx.fill(&mem, &mut input);
                d.t.notify(TX);
            }
            1 => {
                rx.fill(&mem, &mut input);
                d.t.notify(RX);
            }
            2 => {
                // Frames arrive on the TAP (header + Ethernet frame, up to 64 KiB each).
                for _ in 0..input.u8() % 4 {
                    let n = usize::from(input.u16());
                    let frame = input.bytes(n);
                    // SAFETY: writing frame.len() bytes from frame.
                    unsafe { libc::write(peer.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
                }
                if d.t.wanted_host_fd().is_some() {
                    d.t.host_fd_ready();
                }
            }
            3 => d.t.host_fd_ready(),
            4 => {
                d.w(virtio_bindings::virtio_mmio::VIRTIO_MMIO_STATUS, 0);
                d.negotiate();
                rx.setup(&mut d, RX as u32);
                tx.setup(&mut d, TX as u32);
                d.driver_ok();
            }
            _ => write_data(&mem, &mut input),
        }
        drain(&peer);
        d.drain_events();
    }
});
