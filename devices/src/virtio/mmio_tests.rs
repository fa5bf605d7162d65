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
    h.w(
        VIRTIO_MMIO_STATUS,
        VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
    );
    h.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    h.w(VIRTIO_MMIO_DRIVER_FEATURES, 0);
    let s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
    h.w(VIRTIO_MMIO_STATUS, s);
    assert_eq!(h.r(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK, 0);
    // Nor can DRIVER_OK go on without FEATURES_OK.
    h.w(VIRTIO_MMIO_STATUS, s | VIRTIO_CONFIG_S_DRIVER_OK);
    assert_eq!(h.r(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK, 0);
    // Features the device did not offer are refused too.
    h.w(VIRTIO_MMIO_STATUS, 0);
    h.w(
        VIRTIO_MMIO_STATUS,
        VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
    );
    h.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    h.w(VIRTIO_MMIO_DRIVER_FEATURES, 1);
    h.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    h.w(VIRTIO_MMIO_DRIVER_FEATURES, 1 << 5);
    h.w(VIRTIO_MMIO_STATUS, s);
    assert_eq!(h.r(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK, 0);
    // With exactly VERSION_1 it is accepted.
    h.w(VIRTIO_MMIO_STATUS, 0);
    h.w(
        VIRTIO_MMIO_STATUS,
        VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
    );
    h.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    h.w(VIRTIO_MMIO_DRIVER_FEATURES, 1);
    h.w(VIRTIO_MMIO_STATUS, s);
    assert_ne!(h.r(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK, 0);
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
    h.w(
        VIRTIO_MMIO_STATUS,
        VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
    );
    h.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    h.w(VIRTIO_MMIO_DRIVER_FEATURES, 1);
    let s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
    h.w(VIRTIO_MMIO_STATUS, s);
    assert!(h.setup_queue(0));
    let mut ring = h.ring(0);
    ring.add(&[(DATA, 16, true)]);
    h.t.notify(0);
    assert_eq!(h.used(0).0, 0, "no used entry before DRIVER_OK");
    assert_eq!(h.t.interrupt_status(), 0);
    h.w(VIRTIO_MMIO_STATUS, s | VIRTIO_CONFIG_S_DRIVER_OK);
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
