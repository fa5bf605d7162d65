//! The i8042 keyboard controller at ports 0x60 (data) and 0x64 (status/command), with a
//! PS/2 keyboard behind it and no mouse.
//!
//! It answers every controller command Linux's i8042 driver sends while probing (CTR
//! read/write, self-test, interface tests, output port, A20) and every keyboard command
//! atkbd sends (reset, get ID, LEDs, rate, scan set, enable), so neither waits on a
//! time-out. Output bytes raise IRQ 1 when the guest enabled it in the command byte. CPU
//! reset (0xFE, or an output port write with bit 0 clear) triggers `reset_evt`: microvm
//! treats that as "the guest is done".

use std::collections::VecDeque;

use vm_superio::Trigger;

use crate::{BusDevice, EventFdTrigger};

/// First port of the i8042 (data port).
pub const I8042_BASE: u64 = 0x60;
/// Ports covered: 0x60 (data) to 0x64 (command/status).
pub const I8042_LEN: u64 = 5;
/// ISA interrupt of the keyboard port.
pub const I8042_KBD_IRQ: u32 = 1;

const DATA: u64 = 0;
/// Port 0x61, system control port B (NMI status, speaker gate). KVM answers it when the VM
/// has an in-kernel PIT (`--pit on`); without one it reads 0 here: no NMI source pending, the
/// speaker off (all-ones would tell a guest's NMI handler of a PCI SERR and an IOCHK error).
const CONTROL_B: u64 = 1;
const COMMAND: u64 = 4;

/// Status register bits.
const STR_OBF: u8 = 0x01;
const STR_SYS: u8 = 0x04;
const STR_CMD: u8 = 0x08;
/// "Keyboard not inhibited" (keylock open).
const STR_KEYLOCK: u8 = 0x10;

/// Command byte (CTR) bits.
const CTR_KBDINT: u8 = 0x01;
const CTR_SYS: u8 = 0x04;
const CTR_KBDDIS: u8 = 0x10;
const CTR_AUXDIS: u8 = 0x20;
const CTR_XLATE: u8 = 0x40;
/// As a PC BIOS leaves it: keyboard interrupt on, translation on, no mouse.
const CTR_INITIAL: u8 = CTR_KBDINT | CTR_SYS | CTR_AUXDIS | CTR_XLATE;

/// Output port: bit 0 low holds the CPU in reset; bit 1 is the A20 gate.
const OUTP_RESET_N: u8 = 0x01;
const OUTP_INITIAL: u8 = 0x03;

/// Keyboard replies.
const KBD_ACK: u8 = 0xfa;
const KBD_RESEND: u8 = 0xfe;
const KBD_BAT_OK: u8 = 0xaa;
const KBD_ECHO: u8 = 0xee;
/// MF2 keyboard ID, second byte raw and as the controller's translation gives it.
const KBD_ID: [u8; 2] = [0xab, 0x83];
const KBD_ID_TRANSLATED: [u8; 2] = [0xab, 0x41];
/// Scan code set the keyboard uses.
const KBD_SCAN_SET: u8 = 2;

/// Bytes the controller holds for the guest; a guest that never reads can't grow it.
const OUTPUT_MAX: usize = 16;

/// What the next byte written to the data port is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataTarget {
    /// The keyboard: a command.
    Keyboard,
    /// The keyboard: the parameter of command `0`.
    KeyboardParam(u8),
    /// The controller: a new command byte (0x60).
    Ctr,
    /// The controller: a new output port value (0xD1).
    OutputPort,
    /// The controller: a byte to hand back as if the keyboard sent it (0xD2, 0xD3).
    Echo,
    /// The controller: a byte for the (absent) mouse (0xD4), or for internal RAM.
    Discard,
}

/// The i8042 on the port-I/O bus.
pub struct I8042 {
    reset_evt: EventFdTrigger,
    irq: EventFdTrigger,
    ctr: u8,
    outp: u8,
    target: DataTarget,
    output: VecDeque<u8>,
    last_write_was_command: bool,
    irq_level: bool,
}

impl I8042 {
    /// A controller that raises `irq` (IRQ 1) for output bytes and triggers `reset_evt`
    /// when the guest asks for a CPU reset.
    pub fn new(reset_evt: EventFdTrigger, irq: EventFdTrigger) -> Self {
        I8042 {
            reset_evt,
            irq,
            ctr: CTR_INITIAL,
            outp: OUTP_INITIAL,
            target: DataTarget::Keyboard,
            output: VecDeque::new(),
            last_write_was_command: false,
            irq_level: false,
        }
    }

    fn status(&self) -> u8 {
        let mut status = STR_KEYLOCK | STR_SYS;
        if !self.output.is_empty() {
            status |= STR_OBF;
        }
        if self.last_write_was_command {
            status |= STR_CMD;
        }
        status
    }

    fn push(&mut self, byte: u8) {
        if self.output.len() < OUTPUT_MAX {
            self.output.push_back(byte);
        } else {
            log::debug!("i8042: output buffer full, dropping {byte:#04x}");
        }
    }

    /// IRQ 1 is edge-triggered: raise it when a byte becomes readable with interrupts on.
    fn update_irq(&mut self) {
        let level = !self.output.is_empty() && self.ctr & CTR_KBDINT != 0;
        if level && !self.irq_level {
            if let Err(e) = self.irq.trigger() {
                log::error!("i8042: cannot raise IRQ 1: {e}");
            }
        }
        self.irq_level = level;
    }

    fn reset_cpu(&self) {
        if let Err(e) = self.reset_evt.trigger() {
            log::error!("i8042: cannot signal the guest's reset request: {e}");
        }
    }

    fn command(&mut self, cmd: u8) {
        self.target = DataTarget::Keyboard;
        match cmd {
            0x20 => self.push(self.ctr),
            // Internal RAM bytes 1..31: nothing stored there.
            0x21..=0x3f => self.push(0),
            0x60 => self.target = DataTarget::Ctr,
            0x61..=0x7f => self.target = DataTarget::Discard,
            0xa7 => self.ctr |= CTR_AUXDIS,
            0xa8 => self.ctr &= !CTR_AUXDIS,
            // AUX interface test: "clock line stuck low", i.e. no mouse port.
            0xa9 => self.push(0x01),
            // Controller self-test passed.
            0xaa => self.push(0x55),
            // Keyboard interface test passed.
            0xab => self.push(0x00),
            0xad => self.ctr |= CTR_KBDDIS,
            0xae => self.ctr &= !CTR_KBDDIS,
            // Input port: keyboard not inhibited.
            0xc0 => self.push(0x80),
            0xd0 => self.push(self.outp),
            0xd1 => self.target = DataTarget::OutputPort,
            // Write keyboard output buffer / "AUX loopback": the byte comes back as keyboard
            // data, so Linux's AUX loop test fails at once instead of timing out.
            0xd2 | 0xd3 => self.target = DataTarget::Echo,
            0xd4 => self.target = DataTarget::Discard,
            // Test inputs: clock and data low.
            0xe0 => self.push(0x00),
            // Pulse output lines: bit 0 clear pulses CPU reset (0xFE is the usual one).
            0xf0..=0xff if cmd & 1 == 0 => self.reset_cpu(),
            0xf0..=0xff => {}
            _ => log::debug!("i8042: ignoring controller command {cmd:#04x}"),
        }
    }

    fn data(&mut self, value: u8) {
        let target = std::mem::replace(&mut self.target, DataTarget::Keyboard);
        match target {
            DataTarget::Keyboard => self.keyboard_command(value),
            DataTarget::KeyboardParam(cmd) => self.keyboard_param(cmd, value),
            DataTarget::Ctr => self.ctr = value,
            DataTarget::OutputPort => {
                self.outp = value;
                if value & OUTP_RESET_N == 0 {
                    self.reset_cpu();
                }
            }
            DataTarget::Echo => self.push(value),
            DataTarget::Discard => {}
        }
    }

    fn keyboard_command(&mut self, cmd: u8) {
        match cmd {
            // Set LEDs, typematic rate, scan code set: a parameter byte follows.
            0xed | 0xf3 | 0xf0 => {
                self.push(KBD_ACK);
                self.target = DataTarget::KeyboardParam(cmd);
            }
            0xee => self.push(KBD_ECHO),
            0xf2 => {
                let id = if self.ctr & CTR_XLATE != 0 {
                    KBD_ID_TRANSLATED
                } else {
                    KBD_ID
                };
                self.push(KBD_ACK);
                id.into_iter().for_each(|b| self.push(b));
            }
            // Enable, disable, defaults, scan-set-3 key types, resend.
            0xf4..=0xfe => self.push(KBD_ACK),
            0xff => {
                self.push(KBD_ACK);
                self.push(KBD_BAT_OK);
            }
            _ => {
                log::debug!("i8042: unknown keyboard command {cmd:#04x}");
                self.push(KBD_RESEND);
            }
        }
    }

    fn keyboard_param(&mut self, cmd: u8, value: u8) {
        self.push(KBD_ACK);
        if cmd == 0xf0 && value == 0 {
            self.push(KBD_SCAN_SET);
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // Only single-byte accesses are meaningful; wider ones read the same register.
        data.fill(0);
        let value = match offset {
            DATA => {
                // Reading the data port drops the line; the next byte raises it again.
                self.irq_level = false;
                self.output.pop_front().unwrap_or(0)
            }
            COMMAND => self.status(),
            CONTROL_B => 0,
            _ => 0xff,
        };
        if let Some(first) = data.first_mut() {
            *first = value;
        }
        self.update_irq();
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&value) = data.first() else { return };
        match offset {
            DATA => {
                self.last_write_was_command = false;
                self.data(value);
            }
            COMMAND => {
                self.last_write_was_command = true;
                self.command(value);
            }
            _ => log::debug!("i8042: write {value:#04x} to unused port offset {offset}"),
        }
        self.update_irq();
    }
}

#[cfg(test)]
mod tests;
