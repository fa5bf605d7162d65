// SPDX-License-Identifier: Apache-2.0
/*
 * The "storm" scenario: every CPU (the BSP and every AP, started by
 * smp_boot) reads an unassigned I/O port as fast as it can,
 * tiny.storm.exits=<N> times (default 2000), checks each read returns
 * all-ones (an empty bus) and reports its count:
 *   tiny: storm: cpu <i>: <N> port-I/O exits
 *   tiny: storm: <cpus> cpus, <total> port-I/O exits
 * Needs tiny.cpus=<N> (the BSP waits for that many CPUs to finish).
 */
#include "tiny.h"
#include "x86.h"

#define STORM_PORT		0x3f0	/* nothing on the microvm bus */
#define STORM_DEFAULT_EXITS	2000
#define STORM_WAIT_LIMIT	5000000UL	/* polls, one I/O exit each */

static volatile uint32_t storm_done;
static volatile uint64_t storm_total;
static volatile uint32_t storm_bad;

static int storm_selected(void)
{
	size_t len;
	const char *name = cmdline_param("test", &len);

	return name && len == 5 && !memcmp(name, "storm", 5);
}

static void storm_run(unsigned int index)
{
	uint64_t exits = STORM_DEFAULT_EXITS, done = 0;
	uint32_t bad = 0;

	cmdline_param_u64("storm.exits", &exits);
	for (uint64_t i = 0; i < exits; i++) {
		if (inb(STORM_PORT) != 0xff)
			bad++;
		done++;
	}
	tiny_print("storm: cpu %u: %lu port-I/O exits", index, done);
	__asm__ volatile("lock addq %1, %0" : "+m"(storm_total) : "r"(done)
			 : "memory", "cc");
	__asm__ volatile("lock addl %1, %0" : "+m"(storm_bad) : "r"(bad)
			 : "memory", "cc");
	__asm__ volatile("lock incl %0" : "+m"(storm_done) : : "memory", "cc");
}

/* Called by every AP once it is online (smp.c); returns to halt. */
void storm_ap(unsigned int index)
{
	if (storm_selected())
		storm_run(index);
}

static void scenario_storm(struct boot_info *bi)
{
	uint64_t cpus = 0;

	(void)bi;
	if (!cmdline_param_u64("cpus", &cpus) || !cpus || cpus > MAX_CPUS)
		fail("storm: needs tiny.cpus=<N>");
	storm_run(0);
	for (unsigned long t = 0; storm_done < cpus && t < STORM_WAIT_LIMIT;
	     t++)
		io_delay();
	if (storm_done < cpus)
		fail("storm: only %u of %lu cpus finished", storm_done, cpus);
	if (storm_bad)
		fail("storm: %u reads of port 0x%x did not return 0xff",
		     storm_bad, STORM_PORT);
	tiny_print("storm: %lu cpus, %lu port-I/O exits", cpus, storm_total);
}
DEFINE_SCENARIO("storm", scenario_storm);
