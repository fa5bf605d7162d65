//! The legacy port-I/O devices on a bus laid out like microvm's: the 8250 UART at 0x3f8,
//! the i8042 at 0x60, the CMOS RTC at 0x70 and the ACPI sleep registers at 0x600, with
//! sequences of reads and writes of any width around them and host input queued into the
//! UART.
#![no_main]

use devices::acpi_pm::AcpiPm;
use devices::cmos::{Cmos, CMOS_BASE, CMOS_LEN};
use devices::i8042::{I8042, I8042_BASE, I8042_LEN};
use devices::serial::{SerialDevice, COM1_BASE, COM1_LEN};
use devices::{Bus, EventFdTrigger};
use libfuzzer_sys::fuzz_target;
use microvm_fuzz::Input;
use std::sync::{Arc, Mutex};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Port of the ACPI sleep control register (arch::acpi::PM_SLEEP_CONTROL_PORT).
const PM_BASE: u64 = 0x600;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let irq = EventFd::new(EFD_NONBLOCK).unwrap();
    let reset = EventFd::new(EFD_NONBLOCK).unwrap();
    let serial = Arc::new(Mutex::new(SerialDevice::new(
        EventFdTrigger::new(irq.try_clone().unwrap()),
        Box::new(std::io::sink()),
    )));
    let mut bus = Bus::new();
    bus.insert(serial.clone(), COM1_BASE, COM1_LEN).unwrap();
    let kbd_irq = EventFd::new(EFD_NONBLOCK).unwrap();
    bus.insert(
        Arc::new(Mutex::new(I8042::new(
            EventFdTrigger::new(reset.try_clone().unwrap()),
            EventFdTrigger::new(kbd_irq.try_clone().unwrap()),
        ))),
        I8042_BASE,
        I8042_LEN,
    )
    .unwrap();
    bus.insert(Arc::new(Mutex::new(Cmos::default())), CMOS_BASE, CMOS_LEN)
        .unwrap();
    let pm = AcpiPm::new(EventFdTrigger::new(reset.try_clone().unwrap()), 5);
    bus.insert(Arc::new(Mutex::new(pm)), PM_BASE, 2).unwrap();
    for _ in 0..4096 {
        if input.is_empty() {
            break;
        }
        let op = input.u8();
        let port = match (op & 3, input.u8()) {
            (0, p) => COM1_BASE + u64::from(p % 10),
            (1, p) if p & 0x80 != 0 => CMOS_BASE - 1 + u64::from(p % 4),
            (1, p) => I8042_BASE + u64::from(p % 8),
            (2, p) if p & 0x80 != 0 => PM_BASE - 1 + u64::from(p % 4),
            (2, _) => u64::from(input.u16()),
            (_, p) => COM1_BASE - 2 + u64::from(p % 12),
        };
        let width = [1usize, 1, 2, 4, 0, 8, 3, 1][usize::from((op >> 2) & 7)];
        if op & 0x80 != 0 {
            let v = input.u64().to_le_bytes();
            bus.write(port, &v[..width]);
        } else if op & 0x40 != 0 {
            let n = usize::from(input.u8() % 80);
            let bytes = input.bytes(n);
            let mut s = serial.lock().unwrap();
            let room = s.input_capacity();
            let took = s.enqueue_input(bytes).unwrap_or(0);
            assert!(took <= room && took <= bytes.len());
        } else {
            let mut b = [0u8; 8];
            bus.read(port, &mut b[..width]);
        }
        let _ = irq.read();
        let _ = kbd_irq.read();
        let _ = reset.read();
    }
});
