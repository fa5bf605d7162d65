//! The i8042 keyboard controller at ports 0x60-0x64. Guests use its CPU-reset command
//! (0xFE written to port 0x64) to reboot; microvm treats that as "the guest is done".

use vm_superio::I8042Device;

use crate::{BusDevice, EventFdTrigger};

/// First port of the i8042 (data port).
pub const I8042_BASE: u64 = 0x60;
/// Ports covered: 0x60 (data) to 0x64 (command/status).
pub const I8042_LEN: u64 = 5;

/// The i8042 on the port-I/O bus. Its reset command triggers `reset_evt`.
pub struct I8042 {
    inner: I8042Device<EventFdTrigger>,
}

impl I8042 {
    /// A controller that triggers `reset_evt` when the guest asks for a CPU reset.
    pub fn new(reset_evt: EventFdTrigger) -> Self {
        I8042 {
            inner: I8042Device::new(reset_evt),
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // Only single-byte accesses are meaningful; wider ones read the same register.
        data.fill(0);
        if let Some(first) = data.first_mut() {
            *first = self.inner.read(offset as u8);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (Some(&value), Ok(offset)) = (data.first(), u8::try_from(offset)) {
            if let Err(e) = self.inner.write(offset, value) {
                log::error!("i8042: cannot signal the guest's reset request: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

    #[test]
    fn reset_command_triggers_the_event() {
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        let mut dev = I8042::new(EventFdTrigger::new(evt.try_clone().unwrap()));
        dev.write(4, &[0x01]);
        assert!(evt.read().is_err(), "a non-reset command must not trigger");
        dev.write(0, &[0xfe]);
        assert!(evt.read().is_err(), "0xfe on the data port is not a reset");
        dev.write(4, &[0xfe]);
        assert_eq!(evt.read().unwrap(), 1);
    }
}
