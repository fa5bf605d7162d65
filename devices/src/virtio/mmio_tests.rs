//! Transport register semantics, feature negotiation, H6, H7, H8 (with the rng device, the
//! simplest one with a queue).

use virtio_bindings::virtio_config::*;
use virtio_bindings::virtio_mmio::*;

use super::super::rng::Rng;
use super::super::testutil::*;
use crate::BusDevice;

fn rng() -> Harness {
    Harness::new(Box::new(Rng::default()))
}

/// Status with FEATURES_OK asked for.
const FEATURES_OK: u32 =
    VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;

/// A reset, ACKNOWLEDGE | DRIVER, driver features `high` (bits 32-63) and, if given, `low`,
/// then FEATURES_OK; returns the Status register after it.
fn accept_features(h: &mut Harness, high: u32, low: Option<u32>) -> u32 {
    h.w(VIRTIO_MMIO_STATUS, 0);
    h.w(
        VIRTIO_MMIO_STATUS,
        VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
    );
    h.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    h.w(VIRTIO_MMIO_DRIVER_FEATURES, high);
    if let Some(low) = low {
        h.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        h.w(VIRTIO_MMIO_DRIVER_FEATURES, low);
    }
    h.w(VIRTIO_MMIO_STATUS, FEATURES_OK);
    h.r(VIRTIO_MMIO_STATUS)
}

#[test]
fn identity_registers() {
    let mut h = rng();
    assert_eq!(h.r(VIRTIO_MMIO_MAGIC_VALUE), 0x7472_6976);
    assert_eq!(h.r(VIRTIO_MMIO_VERSION), 2);
    assert_eq!(h.r(VIRTIO_MMIO_DEVICE_ID), 4);
    assert_eq!(h.r(VIRTIO_MMIO_VENDOR_ID), 0x4d56_4d4d);
    h.w(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    assert_eq!(h.r(VIRTIO_MMIO_DEVICE_FEATURES), 1, "VERSION_1 is bit 32");
    h.w(VIRTIO_MMIO_QUEUE_SEL, 0);
    assert_eq!(h.r(VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
    h.w(VIRTIO_MMIO_QUEUE_SEL, 1);
    assert_eq!(h.r(VIRTIO_MMIO_QUEUE_NUM_MAX), 0, "no second queue");
    // Narrow register reads read 0 rather than part of a register.
    let mut b = [0xffu8; 2];
    h.t.read(0, &mut b);
    assert_eq!(b, [0, 0]);
}

#[test]
fn full_handshake_reaches_driver_ok_and_wakes_the_device_thread() {
    let mut h = rng();
    let status = h.init();
    assert_eq!(
        status,
        VIRTIO_CONFIG_S_ACKNOWLEDGE
            | VIRTIO_CONFIG_S_DRIVER
            | VIRTIO_CONFIG_S_FEATURES_OK
            | VIRTIO_CONFIG_S_DRIVER_OK
    );
    assert!(h.state.read().unwrap() >= 1);
}

#[test]
fn features_ok_is_refused_without_version_1() {
    let mut h = rng();
    assert_eq!(
        accept_features(&mut h, 0, None) & VIRTIO_CONFIG_S_FEATURES_OK,
        0
    );
    // Nor can DRIVER_OK go on without FEATURES_OK.
    h.w(VIRTIO_MMIO_STATUS, FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
    assert_eq!(h.r(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK, 0);
    // Features the device did not offer are refused too.
    assert_eq!(
        accept_features(&mut h, 1, Some(1 << 5)) & VIRTIO_CONFIG_S_FEATURES_OK,
        0
    );
    // With exactly VERSION_1 it is accepted.
    assert_ne!(
        accept_features(&mut h, 1, None) & VIRTIO_CONFIG_S_FEATURES_OK,
        0
    );
}

#[test]
fn h6_queue_size_not_a_power_of_two_is_refused_then_a_valid_one_works() {
    let mut h = rng();
    assert!(h.setup_queue(0));
    h.w(VIRTIO_MMIO_QUEUE_READY, 0);
    h.w(VIRTIO_MMIO_QUEUE_NUM, 3);
    h.w(VIRTIO_MMIO_QUEUE_READY, 1);
    assert_eq!(h.r(VIRTIO_MMIO_QUEUE_READY), 0, "size 3 must be refused");
    h.w(VIRTIO_MMIO_QUEUE_NUM, 512);
    h.w(VIRTIO_MMIO_QUEUE_READY, 1);
    assert_eq!(
        h.r(VIRTIO_MMIO_QUEUE_READY),
        0,
        "size over QueueNumMax refused"
    );
    h.w(VIRTIO_MMIO_QUEUE_NUM, 0);
    h.w(VIRTIO_MMIO_QUEUE_READY, 1);
    assert_eq!(h.r(VIRTIO_MMIO_QUEUE_READY), 0, "size 0 refused");
    assert_eq!(
        h.init() & VIRTIO_CONFIG_S_DRIVER_OK,
        VIRTIO_CONFIG_S_DRIVER_OK
    );
    let mut ring = h.ring(0);
    ring.add(&[(DATA, 32, true)]);
    h.t.notify(0);
    assert_eq!(h.used(0), (1, vec![(0, 32)]));
}

#[test]
fn rings_outside_ram_are_refused() {
    let mut h = rng();
    h.w(VIRTIO_MMIO_QUEUE_SEL, 0);
    h.w(VIRTIO_MMIO_QUEUE_NUM, 16);
    h.w(VIRTIO_MMIO_QUEUE_DESC_LOW, 0);
    h.w(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0xffff);
    h.w(VIRTIO_MMIO_QUEUE_READY, 1);
    assert_eq!(h.r(VIRTIO_MMIO_QUEUE_READY), 0);
}

#[test]
fn h7_notify_before_driver_ok_is_ignored_then_the_queue_works() {
    let mut h = rng();
    // Everything but DRIVER_OK.
    accept_features(&mut h, 1, None);
    assert!(h.setup_queue(0));
    let mut ring = h.ring(0);
    ring.add(&[(DATA, 16, true)]);
    h.t.notify(0);
    assert_eq!(h.used(0).0, 0, "no used entry before DRIVER_OK");
    assert_eq!(h.t.interrupt_status(), 0);
    h.w(VIRTIO_MMIO_STATUS, FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
    h.t.notify(0);
    assert_eq!(h.used(0), (1, vec![(0, 16)]));
    assert_eq!(h.r(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
    assert_eq!(h.irq.read().unwrap(), 1);
    h.w(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
    assert_eq!(h.r(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
}

#[test]
fn h8_avail_idx_jump_stops_the_queue_until_reset() {
    let mut h = rng();
    h.init();
    let mut ring = h.ring(0);
    ring.add(&[(DATA, 8, true)]);
    ring.set_avail_idx(1 + QSIZE + 5);
    h.t.notify(0);
    assert_eq!(h.used(0).0, 0);
    let status = h.r(VIRTIO_MMIO_STATUS);
    assert_ne!(
        status & VIRTIO_CONFIG_S_NEEDS_RESET,
        0,
        "status {status:#x}"
    );
    assert_ne!(
        h.r(VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG,
        0
    );
    // Stopped: a sane ring is not served until reset.
    ring.set_avail_idx(1);
    h.t.notify(0);
    assert_eq!(h.used(0).0, 0);
    // Reset and re-initialise: the device works again.
    assert_eq!(h.init() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    let mut ring = h.ring(0);
    ring.add(&[(DATA, 8, true)]);
    h.t.notify(0);
    assert_eq!(h.used(0), (1, vec![(0, 8)]));
}

#[test]
fn queue_layout_is_frozen_while_ready() {
    let mut h = rng();
    assert!(h.setup_queue(0));
    let before = h.r(VIRTIO_MMIO_QUEUE_DESC_LOW);
    h.w(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x8000);
    assert_eq!(h.r(VIRTIO_MMIO_QUEUE_DESC_LOW), before);
}

#[test]
fn a_pass_serves_at_most_one_ring_and_requeues_the_rest() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use vm_memory::{Bytes, GuestAddress};

    let mut h = rng();
    h.init();
    let used_idx_addr = GuestAddress(ring_base(0).0 + USED_OFF + 2);
    let stop = Arc::new(AtomicBool::new(false));
    // A guest that refills the ring as fast as the device empties it.
    let refiller = {
        let (mem, stop, mut ring) = (h.mem.clone(), stop.clone(), h.ring(0));
        std::thread::spawn(move || {
            let mut published = 0u16;
            while !stop.load(Ordering::Relaxed) {
                let used: u16 = mem.read_obj(used_idx_addr).unwrap();
                if published.wrapping_sub(used) < QSIZE {
                    let d = published % QSIZE;
                    ring.store(d, DATA + u64::from(d) * 64, 16, F_WRITE, 0);
                    ring.publish(d);
                    published = published.wrapping_add(1);
                }
            }
        })
    };
    let mut requeued = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // Until a pass has left chains behind (the refiller needs CPU time to race the device).
    while requeued == 0 && std::time::Instant::now() < deadline {
        let before = h.used(0).0;
        h.t.notify(0);
        let served = h.used(0).0.wrapping_sub(before);
        assert!(served <= QSIZE, "one pass served {served} chains");
        if h.notify[0].read().is_ok() {
            requeued += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    refiller.join().unwrap();
    assert!(
        requeued > 0,
        "chains left after a pass re-queue a notification"
    );
}

/// VIRTIO_RING_F_EVENT_IDX, offered by the transport. Negotiated: after each pass the device
/// publishes `avail_event` (the next entry it takes, so the driver kicks for the next
/// request) and interrupts only once its used index passes the driver's `used_event`. Not
/// negotiated: every pass that used a buffer interrupts.
#[test]
fn event_idx_interrupts_only_past_used_event_and_publishes_avail_event() {
    use vm_memory::{Bytes, GuestAddress};
    let event_idx = 1u32 << virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
    let base = ring_base(0).0;
    let used_event = GuestAddress(base + AVAIL_OFF + 4 + 2 * u64::from(QSIZE));
    let avail_event = GuestAddress(base + USED_OFF + 4 + 8 * u64::from(QSIZE));
    let mut h = rng();
    h.w(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    assert_ne!(h.r(VIRTIO_MMIO_DEVICE_FEATURES) & event_idx, 0, "offered");
    for negotiated in [true, false] {
        let low = if negotiated { event_idx } else { 0 };
        let status = accept_features(&mut h, 1, Some(low));
        assert_ne!(status & VIRTIO_CONFIG_S_FEATURES_OK, 0);
        assert!(h.setup_queue(0));
        h.w(VIRTIO_MMIO_STATUS, FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
        // The driver asks for an interrupt once the third buffer is used (used_event = 2).
        h.mem.write_obj(2u16, used_event).unwrap();
        h.mem.write_obj(0u16, avail_event).unwrap();
        let _ = h.irq.read();
        let mut ring = h.ring(0);
        for n in 1..=3u16 {
            ring.add(&[(DATA, 16, true)]);
            h.t.notify(0);
            assert_eq!(h.used(0).0, n);
            let published: u16 = h.mem.read_obj(avail_event).unwrap();
            let interrupted = h.irq.read().is_ok();
            h.w(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
            if negotiated {
                assert_eq!(published, n, "avail_event after request {n}");
                assert_eq!(interrupted, n == 3, "interrupt after request {n}");
            } else {
                assert_eq!(published, 0, "no avail_event without EVENT_IDX");
                assert!(interrupted, "interrupt after request {n}");
            }
        }
    }
}
