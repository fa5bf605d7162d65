//! A CMOS RTC (MC146818) at ports 0x70 (index) and 0x71 (data), for guests without ACPI.
//!
//! With ACPI, the FADT tells Linux there is no CMOS RTC (its wall clock comes from
//! kvm-clock), so this device is only placed when `--acpi off`. There, Linux's rtc_cmos
//! probes ports 0x70/0x71 whatever the tables say, and waits seconds on a port that answers
//! 0xff ("broken or not accessible"). This model answers at once: the host's UTC time in
//! BCD or binary, 24- or 12-hour as register B asks, update-in-progress never set, the rest
//! of the 128 bytes plain RAM. Writes to the clock registers are ignored: the guest cannot
//! change the host's time, and the clock keeps following it.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::BusDevice;

/// First port of the RTC (index register).
pub const CMOS_BASE: u64 = 0x70;
/// Ports covered: index and data.
pub const CMOS_LEN: u64 = 2;

const INDEX: u64 = 0;
const DATA: u64 = 1;
/// Bit 7 of the index port masks NMIs; it is not part of the register number.
const INDEX_MASK: u8 = 0x7f;

const REG_SECONDS: u8 = 0x00;
const REG_MINUTES: u8 = 0x02;
const REG_HOURS: u8 = 0x04;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_A: u8 = 0x0a;
const REG_B: u8 = 0x0b;
const REG_C: u8 = 0x0c;
const REG_D: u8 = 0x0d;
const REG_CENTURY: u8 = 0x32;

/// Register A: 32.768 kHz time base, 1024 Hz periodic rate; UIP (bit 7) never set.
const REG_A_VALUE: u8 = 0x26;
/// Register B: 24-hour mode.
const REG_B_24H: u8 = 0x02;
/// Register B: binary (not BCD) values.
const REG_B_BINARY: u8 = 0x04;
/// Register D: the RAM and time are valid (VRT).
const REG_D_VRT: u8 = 0x80;

/// The RTC with its 128 bytes of CMOS memory.
pub struct Cmos {
    index: u8,
    ram: [u8; 128],
}

impl Default for Cmos {
    fn default() -> Self {
        let mut ram = [0u8; 128];
        ram[REG_A as usize] = REG_A_VALUE;
        ram[REG_B as usize] = REG_B_24H;
        Cmos { index: 0, ram }
    }
}

/// Calendar fields of a UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: u32,
    month: u32,
    day: u32,
    weekday: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

/// UTC calendar fields of `secs` since the epoch (days to date: Howard Hinnant's algorithm).
fn civil(secs: u64) -> Civil {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    Civil {
        year: year as u32,
        month: month as u32,
        day: day as u32,
        // 1970-01-01 was a Thursday; the RTC counts Sunday as 1.
        weekday: ((days + 4) % 7 + 1) as u32,
        hour: (rem / 3600) as u32,
        minute: (rem / 60 % 60) as u32,
        second: (rem % 60) as u32,
    }
}

impl Cmos {
    fn encode(&self, value: u32) -> u8 {
        let value = (value % 100) as u8;
        if self.ram[REG_B as usize] & REG_B_BINARY != 0 {
            value
        } else {
            ((value / 10) << 4) | (value % 10)
        }
    }

    fn hours(&self, hour: u32) -> u8 {
        if self.ram[REG_B as usize] & REG_B_24H != 0 {
            return self.encode(hour);
        }
        // 12-hour mode: 12, 1..11, with bit 7 for PM.
        let h12 = match hour % 12 {
            0 => 12,
            h => h,
        };
        self.encode(h12) | if hour >= 12 { 0x80 } else { 0 }
    }

    fn register(&self, reg: u8, now: Civil) -> u8 {
        match reg {
            REG_SECONDS => self.encode(now.second),
            REG_MINUTES => self.encode(now.minute),
            REG_HOURS => self.hours(now.hour),
            REG_WEEKDAY => self.encode(now.weekday),
            REG_DAY => self.encode(now.day),
            REG_MONTH => self.encode(now.month),
            REG_YEAR => self.encode(now.year),
            REG_CENTURY => self.encode(now.year / 100),
            REG_A => REG_A_VALUE,
            // No interrupt ever becomes pending.
            REG_C => 0,
            REG_D => REG_D_VRT,
            _ => self.ram[usize::from(reg & INDEX_MASK)],
        }
    }
}

fn now() -> Civil {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    civil(secs)
}

impl BusDevice for Cmos {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let value = match offset {
            INDEX => self.index,
            DATA => self.register(self.index, now()),
            _ => 0xff,
        };
        if let Some(first) = data.first_mut() {
            *first = value;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&value) = data.first() else { return };
        match (offset, self.index) {
            (INDEX, _) => self.index = value & INDEX_MASK,
            (DATA, REG_SECONDS | REG_MINUTES | REG_HOURS | REG_WEEKDAY)
            | (DATA, REG_DAY | REG_MONTH | REG_YEAR | REG_CENTURY) => {
                log::debug!(
                    "cmos: ignoring a write of the clock (register {:#04x})",
                    self.index
                )
            }
            (DATA, REG_A | REG_C | REG_D) => {}
            (DATA, reg) => self.ram[usize::from(reg)] = value,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(c: &mut Cmos, r: u8) -> u8 {
        c.write(INDEX, &[r | 0x80]);
        let mut b = [0];
        c.read(DATA, &mut b);
        b[0]
    }

    #[test]
    fn civil_dates_are_right() {
        let t = civil(0);
        assert_eq!((t.year, t.month, t.day, t.weekday), (1970, 1, 1, 5));
        // 2026-12-01 20:15:32 UTC, a Tuesday.
        let t = civil(1_796_156_132);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second, t.weekday),
            (2026, 12, 1, 20, 15, 32, 3)
        );
        // 2024-02-29, leap day.
        let t = civil(1_709_164_800);
        assert_eq!((t.year, t.month, t.day), (2024, 2, 29));
    }

    #[test]
    fn rtc_cmos_sees_a_valid_clock_without_update_in_progress() {
        let mut c = Cmos::default();
        assert_eq!(reg(&mut c, REG_A) & 0x80, 0, "UIP clear");
        assert_eq!(reg(&mut c, REG_D), REG_D_VRT);
        assert_eq!(reg(&mut c, REG_B), REG_B_24H);
        let year = reg(&mut c, REG_YEAR);
        assert!(year >> 4 <= 9 && year & 0xf <= 9, "BCD year {year:#x}");
        assert_eq!(reg(&mut c, REG_CENTURY), 0x20);
        let month = reg(&mut c, REG_MONTH);
        assert!((0x01..=0x12).contains(&month), "BCD month {month:#x}");
    }

    #[test]
    fn binary_and_12_hour_modes_follow_register_b() {
        let mut c = Cmos::default();
        let t = civil(1_796_156_132);
        assert_eq!(c.register(REG_HOURS, t), 0x20);
        c.ram[REG_B as usize] = REG_B_BINARY | REG_B_24H;
        assert_eq!(c.register(REG_HOURS, t), 20);
        c.ram[REG_B as usize] = REG_B_BINARY;
        assert_eq!(c.register(REG_HOURS, t), 0x80 | 8, "8 PM");
    }

    #[test]
    fn ram_is_kept_clock_writes_are_not_and_garbage_is_survived() {
        let mut c = Cmos::default();
        c.write(INDEX, &[0x40]);
        c.write(DATA, &[0x5a]);
        assert_eq!(reg(&mut c, 0x40), 0x5a);
        c.write(INDEX, &[REG_YEAR]);
        c.write(DATA, &[0x99]);
        assert_eq!(c.ram[REG_YEAR as usize], 0);
        for v in 0..=255u8 {
            c.write(INDEX, &[v]);
            c.write(DATA, &[v]);
            c.write(5, &[v]);
            let mut wide = [0u8; 4];
            c.read(DATA, &mut wide);
            c.read(9, &mut wide);
        }
        c.write(DATA, &[]);
    }
}
