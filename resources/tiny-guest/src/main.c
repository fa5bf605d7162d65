// SPDX-License-Identifier: Apache-2.0
/*
 * The tiny guest: checks what the VMM set up (boot_params, command line,
 * e820, initramfs, MP table, ACPI tables, SMP bring-up), runs the scenario
 * chosen with tiny.test=<name> and reports "tiny: PASS" or "tiny: FAIL:
 * <reason>" on COM1. Both end with a reset through the i8042 controller.
 */
#include "tiny.h"
#include "acpi.h"
#include "virtio.h"
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

/*
 * tiny.smp=off leaves the APs waiting for INIT/SIPI, as a kernel that found fewer CPUs
 * than the VMM described would: microvm must say so at exit.
 */
static int smp_wanted(void)
{
	size_t len;
	const char *v = cmdline_param("smp", &len);

	return !(v && len == 3 && !memcmp(v, "off", 3));
}

void tiny_main(uint8_t *boot_params);
void tiny_main(uint8_t *boot_params)
{
	struct boot_info bi = { .boot_params = boot_params };
	const struct scenario *scenario;
	struct mp_cpus mp;
	const struct mp_cpus *cpus = &mp;

	serial_init();
	tiny_print("hello from the tiny guest (boot_params at 0x%lx)",
		   (uint64_t)boot_params);
	paging_init();		/* before touching anything above 1 GiB */
	bootparams_check(&bi);
	scenario = find_scenario();
	tiny_print("scenario: %s", scenario->name);
	mptable_scan(&mp);
	/* With ACPI, the CPUs are the MADT's, as for Linux; the MP table must agree. */
	bi.acpi = acpi_scan(boot_params);
	if (bi.acpi) {
		acpi_check_mptable(bi.acpi, &mp);
		cpus = &bi.acpi->cpus;
	}
	tiny_print("cpus from %s: %u", bi.acpi ? "ACPI MADT" : "MP table",
		   cpus->count);
	if (smp_wanted())
		smp_boot(cpus);
	else
		tiny_print("smp: not starting the other cpus (tiny.smp=off)");
	virtio_report_source(&bi);

	scenario->run(&bi);
	tiny_print("PASS");
	reset_machine();
}
