// SPDX-License-Identifier: Apache-2.0
/*
 * tiny.test=seccomp-hook tiny.hook.thread=vmm|vcpu0: make a chosen microvm thread
 * attempt a forbidden system call, through the test-only hook device on port
 * 0x510 (microvm built with the cargo feature "test-hooks"):
 *   outb 1 -> the vCPU thread that executes the outb calls getppid() itself;
 *   outb 2 -> the vmm thread calls getppid() when it next wakes up;
 *   inb    -> 0 while nothing is done, 1 once the vmm thread made the call,
 *             0xff when there is no hook device (a build without the feature).
 * Under --seccomp true microvm exits 148 with a report naming that thread; under
 * --seccomp log (or false) the call runs and the guest prints PASS.
 */
#include "tiny.h"
#include "x86.h"

#define HOOK_PORT 0x510
#define HOOK_SELF 1
#define HOOK_VMM 2

static void scenario_seccomp_hook(struct boot_info *bi)
{
	size_t len;
	const char *who = cmdline_param("hook.thread", &len);
	unsigned long spins;

	(void)bi;
	if (!who)
		fail("seccomp-hook needs tiny.hook.thread=vmm|vcpu0");
	if (inb(HOOK_PORT) == 0xff)
		fail("no hook device on port 0x510 (build microvm with --features test-hooks)");
	if (len == 5 && !memcmp(who, "vcpu0", 5)) {
		tiny_print("seccomp-hook: vcpu0 makes a forbidden system call");
		outb(HOOK_PORT, HOOK_SELF);
		tiny_print("seccomp-hook: vcpu0 survived its forbidden system call");
		return;
	}
	if (len == 3 && !memcmp(who, "vmm", 3)) {
		tiny_print("seccomp-hook: asking the vmm thread to make a forbidden system call");
		outb(HOOK_PORT, HOOK_VMM);
		for (spins = 0; spins < 100000000UL; spins++)
			if (inb(HOOK_PORT) == 1)
				break;
		if (inb(HOOK_PORT) != 1)
			fail("the vmm thread did not report back");
		tiny_print("seccomp-hook: the vmm thread survived its forbidden system call");
		return;
	}
	fail("tiny.hook.thread=%.*s: expected vmm or vcpu0", (int)len, who);
}
DEFINE_SCENARIO("seccomp-hook", scenario_seccomp_hook);
