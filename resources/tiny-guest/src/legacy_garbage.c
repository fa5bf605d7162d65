// SPDX-License-Identifier: Apache-2.0
/*
 * The "legacy-garbage" scenario: every byte value written to the i8042 (data and
 * command ports), the CMOS RTC (index and data) and the ACPI sleep control/status
 * registers, each port read back, then the i8042 must still answer its probe
 * commands. microvm must answer everything and keep running: only the values that
 * really reset or power off the machine are left out (a CPU-reset pulse, an output
 * port write with bit 0 clear, SLP_EN with the S5 sleep type).
 */
#include "tiny.h"
#include "x86.h"

#define I8042_DATA 0x60
#define I8042_CMD 0x64
#define CMOS_INDEX 0x70
#define CMOS_DATA 0x71
#define PM_SLEEP_CONTROL 0x600
#define PM_SLEEP_STATUS 0x601

/* Commands after which the next data byte goes to the output port. */
#define I8042_WRITE_OUTPUT_PORT 0xd1

static int resets_cpu(uint8_t cmd)
{
	return cmd == I8042_WRITE_OUTPUT_PORT || (cmd >= 0xf0 && !(cmd & 1));
}

static int powers_off(uint8_t v)
{
	return (v & 0x20) && ((v >> 2) & 7) == 5;
}

static void drain_i8042(void)
{
	for (int i = 0; i < 64 && (inb(I8042_CMD) & 1); i++)
		inb(I8042_DATA);
}

static uint8_t i8042_query(uint8_t cmd)
{
	drain_i8042();
	outb(I8042_CMD, cmd);
	for (int i = 0; i < 1000; i++)
		if (inb(I8042_CMD) & 1)
			return inb(I8042_DATA);
	fail("legacy-garbage: i8042 command 0x%02x got no answer", cmd);
}

static void scenario_legacy_garbage(struct boot_info *bi)
{
	(void)bi;
	for (unsigned int v = 0; v < 256; v++) {
		if (!resets_cpu((uint8_t)v)) {
			outb(I8042_CMD, (uint8_t)v);
			outb(I8042_DATA, (uint8_t)(v ^ 0x5a) | 1);
		}
		outb(I8042_DATA, (uint8_t)v);
		inb(I8042_DATA);
		inb(I8042_CMD);
		outb(CMOS_INDEX, (uint8_t)v);
		outb(CMOS_DATA, (uint8_t)~v);
		inb(CMOS_DATA);
		inb(CMOS_INDEX);
		if (!powers_off((uint8_t)v))
			outb(PM_SLEEP_CONTROL, (uint8_t)v);
		outb(PM_SLEEP_STATUS, (uint8_t)v);
		inb(PM_SLEEP_CONTROL);
		inb(PM_SLEEP_STATUS);
	}
	tiny_print("legacy-garbage: 256 values on 6 ports answered");
	/* The controller still works: a known command byte reads back, self-test passes. */
	outb(I8042_CMD, 0x60);
	outb(I8042_DATA, 0x45);
	if (i8042_query(0x20) != 0x45)
		fail("legacy-garbage: the i8042 lost its command byte");
	if (i8042_query(0xaa) != 0x55)
		fail("legacy-garbage: i8042 self-test failed");
	tiny_print("legacy-garbage: the i8042 still answers its probe");
}
DEFINE_SCENARIO("legacy-garbage", scenario_legacy_garbage);
