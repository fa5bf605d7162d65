use super::*;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

struct Rig {
    dev: I8042,
    reset: EventFd,
    irq: EventFd,
}

fn rig() -> Rig {
    let reset = EventFd::new(EFD_NONBLOCK).unwrap();
    let irq = EventFd::new(EFD_NONBLOCK).unwrap();
    let dev = I8042::new(
        EventFdTrigger::new(reset.try_clone().unwrap()),
        EventFdTrigger::new(irq.try_clone().unwrap()),
    );
    Rig { dev, reset, irq }
}

impl Rig {
    fn status(&mut self) -> u8 {
        let mut b = [0];
        self.dev.read(COMMAND, &mut b);
        b[0]
    }
    fn data(&mut self) -> u8 {
        let mut b = [0];
        self.dev.read(DATA, &mut b);
        b[0]
    }
    fn cmd(&mut self, c: u8) {
        self.dev.write(COMMAND, &[c]);
    }
    fn put(&mut self, d: u8) {
        self.dev.write(DATA, &[d]);
    }
    /// Every byte waiting, read the way Linux's i8042_wait_read + read_data do.
    fn drain(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.status() & STR_OBF != 0 {
            out.push(self.data());
        }
        out
    }
    fn irqs(&self) -> u64 {
        self.irq.read().unwrap_or(0)
    }
}

#[test]
fn reset_command_triggers_the_event() {
    let mut r = rig();
    r.cmd(0x01);
    r.cmd(0xff);
    assert!(
        r.reset.read().is_err(),
        "no reset for 0x01 or the 0xff null command"
    );
    r.put(0xfe);
    assert!(
        r.reset.read().is_err(),
        "0xfe on the data port is a keyboard command"
    );
    r.cmd(0xfe);
    assert_eq!(r.reset.read().unwrap(), 1);
}

#[test]
fn output_port_write_with_reset_bit_clear_resets() {
    let mut r = rig();
    // What Linux's i8042_platform_init sends to enable A20: 0xd1, 0xdf.
    r.cmd(0xd1);
    r.put(0xdf);
    assert!(r.reset.read().is_err());
    r.cmd(0xd0);
    assert_eq!(r.drain(), [0xdf]);
    r.cmd(0xd1);
    r.put(0xde);
    assert_eq!(r.reset.read().unwrap(), 1);
}

#[test]
fn linux_controller_probe_gets_an_answer_to_every_command() {
    let mut r = rig();
    let st = r.status();
    assert_eq!(st & STR_OBF, 0, "nothing to flush at start");
    assert_ne!(
        st & STR_KEYLOCK,
        0,
        "keylock open: no 'Keylock active' warning"
    );
    // Stable CTR: read twice.
    r.cmd(0x20);
    let ctr = r.drain();
    r.cmd(0x20);
    assert_eq!(r.drain(), ctr);
    assert_eq!(ctr, [CTR_INITIAL]);
    // Disable keyboard interface and interrupt, write back, read back.
    let new = (ctr[0] | CTR_KBDDIS) & !CTR_KBDINT;
    r.cmd(0x60);
    r.put(new);
    r.cmd(0x20);
    assert_eq!(r.drain(), [new]);
    assert_ne!(r.status() & STR_CMD, 0, "last write was a command");
    r.cmd(0xaa);
    assert_eq!(r.drain(), [0x55], "self-test");
    r.cmd(0xab);
    assert_eq!(r.drain(), [0x00], "keyboard port test");
    // AUX loop (0xd3) answers at once as keyboard data; the AUX test says "no mouse".
    r.cmd(0xd3);
    r.put(0x5a);
    assert_eq!(r.drain(), [0x5a]);
    r.cmd(0xa9);
    assert_eq!(r.drain(), [0x01]);
}

#[test]
fn atkbd_probe_sees_an_mf2_keyboard() {
    let mut r = rig();
    r.put(0xff);
    assert_eq!(r.drain(), [KBD_ACK, KBD_BAT_OK], "reset + BAT");
    r.put(0xf2);
    assert_eq!(r.drain(), [KBD_ACK, 0xab, 0x41], "ID, translated");
    r.cmd(0x60);
    r.put(CTR_KBDINT);
    r.put(0xf2);
    assert_eq!(r.drain(), [KBD_ACK, 0xab, 0x83], "ID, raw");
    r.put(0xed);
    assert_eq!(r.drain(), [KBD_ACK]);
    r.put(0x00);
    assert_eq!(r.drain(), [KBD_ACK], "LED parameter");
    r.put(0xf0);
    r.put(0x00);
    assert_eq!(r.drain(), [KBD_ACK, KBD_ACK, KBD_SCAN_SET]);
    r.put(0xf4);
    assert_eq!(r.drain(), [KBD_ACK]);
    r.put(0xee);
    assert_eq!(r.drain(), [KBD_ECHO]);
    r.put(0x42);
    assert_eq!(r.drain(), [KBD_RESEND], "unknown command");
}

#[test]
fn irq1_is_raised_once_per_readable_byte_and_only_when_enabled() {
    let mut r = rig();
    r.put(0xf2);
    // Three bytes: one edge now, one after each read that leaves a byte behind.
    assert_eq!(r.irqs(), 1);
    r.data();
    assert_eq!(r.irqs(), 1);
    r.data();
    assert_eq!(r.irqs(), 1);
    r.data();
    assert_eq!(r.irqs(), 0, "buffer empty");
    r.cmd(0x60);
    r.put(CTR_INITIAL & !CTR_KBDINT);
    r.put(0xf4);
    assert_eq!(r.irqs(), 0, "interrupt disabled in the CTR");
    assert_eq!(r.drain(), [KBD_ACK]);
}

#[test]
fn garbage_never_grows_the_buffer_or_panics() {
    let mut r = rig();
    for i in 0..=255u8 {
        for _ in 0..4 {
            r.cmd(i);
            r.put(i.wrapping_mul(7));
            r.dev.write(2, &[i]);
            r.dev.write(DATA, &[]);
            let mut wide = [0u8; 4];
            r.dev.read(1, &mut wide);
        }
        assert!(r.dev.output.len() <= OUTPUT_MAX);
    }
}

#[test]
fn control_port_b_reads_no_nmi_source() {
    let mut r = rig();
    let mut b = [0xaau8; 1];
    r.dev.read(CONTROL_B, &mut b);
    assert_eq!(b, [0], "port 0x61: no SERR/IOCHK, speaker off");
    let mut b = [0u8; 1];
    r.dev.read(2, &mut b);
    assert_eq!(b, [0xff], "port 0x62 stays unassigned");
}
