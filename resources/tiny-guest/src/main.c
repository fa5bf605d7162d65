// SPDX-License-Identifier: Apache-2.0
/*
 * The tiny guest: checks what the VMM set up (boot_params, command line,
 * e820, initramfs, MP table, SMP bring-up), runs the scenario chosen with
 * tiny.test=<name> and reports "tiny: PASS" or "tiny: FAIL: <reason>" on
 * COM1. Both end with a reset through the i8042 controller.
 */
#include "tiny.h"
#include "x86.h"

#define I8042_COMMAND_PORT	0x64
#define I8042_CMD_RESET		0xfe	/* pulse the CPU reset line */
#define DEFAULT_SCENARIO	"boot"

extern const struct scenario __scenarios_start[], __scenarios_end[];

void reset_machine(void)
{
	outb(I8042_COMMAND_PORT, I8042_CMD_RESET);
	halt_forever();
}

static const struct scenario *find_scenario(void)
{
	size_t len;
	const char *name = cmdline_param("test", &len);

	if (!name) {
		name = DEFAULT_SCENARIO;
		len = strlen(name);
	}
	for (const struct scenario *s = __scenarios_start;
	     s < __scenarios_end; s++)
		if (strlen(s->name) == len && !memcmp(s->name, name, len))
			return s;
	fail("unknown scenario %.*s", (int)len, name);
}

void tiny_main(uint8_t *boot_params);
void tiny_main(uint8_t *boot_params)
{
	struct boot_info bi = { .boot_params = boot_params };
	const struct scenario *scenario;
	struct mp_cpus cpus;

	serial_init();
	tiny_print("hello from the tiny guest (boot_params at 0x%lx)",
		   (uint64_t)boot_params);
	paging_init();		/* before touching anything above 1 GiB */
	bootparams_check(&bi);
	scenario = find_scenario();
	tiny_print("scenario: %s", scenario->name);
	mptable_scan(&cpus);
	smp_boot(&cpus);

	scenario->run(&bi);
	tiny_print("PASS");
	reset_machine();
}
