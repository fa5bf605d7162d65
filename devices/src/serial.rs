//! The 8250/16550A UART at port 0x3f8 (COM1, IRQ 4): guest console output goes to a host
//! writer (stdout), host input (stdin) is queued for the guest to read.

use std::io::Write;

use vm_superio::serial::NoEvents;
use vm_superio::Serial;

use crate::{BusDevice, EventFdTrigger};

/// Base port of COM1.
pub const COM1_BASE: u64 = 0x3f8;
/// Number of UART registers.
pub const COM1_LEN: u64 = 8;
/// Legacy IRQ line of COM1.
pub const COM1_IRQ: u32 = 4;

/// An 8250 UART on the port-I/O bus.
pub struct SerialDevice {
    inner: Serial<EventFdTrigger, NoEvents, Box<dyn Write + Send>>,
}

impl SerialDevice {
    /// A UART that writes guest output to `out` and raises its interrupt through `irq`.
    pub fn new(irq: EventFdTrigger, out: Box<dyn Write + Send>) -> Self {
        SerialDevice {
            inner: Serial::new(irq, out),
        }
    }

    /// Queues host input for the guest; returns how many bytes fit in the receive FIFO.
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let room = self.inner.fifo_capacity();
        let take = bytes.len().min(room);
        if take == 0 {
            return Ok(0);
        }
        self.inner
            .enqueue_raw_bytes(&bytes[..take])
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// Free space in the receive FIFO.
    pub fn input_capacity(&self) -> usize {
        self.inner.fifo_capacity()
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let (Some(first), Ok(offset)) = (data.first_mut(), u8::try_from(offset)) {
            *first = self.inner.read(offset);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (Some(&value), Ok(offset)) = (data.first(), u8::try_from(offset)) {
            // A host write error (stdout closed) loses console output but must not stop
            // the guest; log it at debug to avoid a flood.
            if let Err(e) = self.inner.write(offset, value) {
                log::debug!("serial: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_reaches_the_writer_and_input_the_guest() {
        let irq = EventFd::new(EFD_NONBLOCK).unwrap();
        let sink = Sink::default();
        let mut dev = SerialDevice::new(
            EventFdTrigger::new(irq.try_clone().unwrap()),
            Box::new(sink.clone()),
        );
        for b in b"hi" {
            dev.write(0, &[*b]);
        }
        assert_eq!(&*sink.0.lock().unwrap(), b"hi");

        // Enable the received-data interrupt, then feed input.
        dev.write(1, &[0x01]);
        let _ = irq.read();
        assert_eq!(dev.enqueue_input(b"x").unwrap(), 1);
        assert_eq!(irq.read().unwrap(), 1, "input must raise the IRQ");
        let mut lsr = [0u8];
        dev.read(5, &mut lsr);
        assert_eq!(lsr[0] & 1, 1, "data ready");
        let mut b = [0u8];
        dev.read(0, &mut b);
        assert_eq!(b[0], b'x');
    }

    #[test]
    fn input_beyond_the_fifo_is_refused_not_lost_silently() {
        let irq = EventFd::new(EFD_NONBLOCK).unwrap();
        let mut dev = SerialDevice::new(EventFdTrigger::new(irq), Box::new(Sink::default()));
        let cap = dev.input_capacity();
        let big = vec![b'a'; cap + 10];
        assert_eq!(dev.enqueue_input(&big).unwrap(), cap);
        assert_eq!(dev.enqueue_input(b"b").unwrap(), 0);
    }
}
