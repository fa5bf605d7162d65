// SPDX-License-Identifier: Apache-2.0
/*
 * tiny.test=seccomp-hook tiny.hook.thread=vmm|vcpu0|virtio-rng0: make a chosen microvm thread
 * attempt a forbidden system call, through the test-only hook device on port
 * 0x510 (microvm built with the cargo feature "test-hooks"):
 *   outb 1 -> the vCPU thread that executes the outb calls getppid() itself;
 *   outb 2 -> the vmm thread calls getppid() when it next wakes up;
 *   outb 3 -> the next device thread to wake up calls getppid() (the guest then
 *             makes a virtio-rng request, which wakes the virtio-rng0 thread);
 *   inb    -> bit 0 once the vmm thread made the call, bit 1 once a device
 *             thread did; 0xff when there is no hook device (a build without it).
 * Under --seccomp true microvm exits 148 with a report naming that thread; under
 * --seccomp log (or false) the call runs and the guest prints PASS.
 */
#include "tiny.h"
#include "x86.h"
#include "virtio.h"

#define HOOK_PORT 0x510
#define HOOK_SELF 1
#define HOOK_VMM 2
#define HOOK_DEVICE 3

/* Waits (bounded) until the hook reports `bit`. */
static void wait_for_hook(uint8_t bit, const char *who)
{
	unsigned long spins;

	for (spins = 0; spins < 100000000UL; spins++)
		if (inb(HOOK_PORT) & bit)
			return;
	fail("the %s thread did not report back", who);
}

/* The first virtio-rng device, initialised; FAIL if none. */
static void hook_rng_device(const struct boot_info *bi)
{
	static struct virtio_dev devs[VIRTIO_MAX_DEVICES];
	unsigned int i, n = virtio_probe(bi, devs);

	for (i = 0; i < n; i++) {
		if (devs[i].device_id == VIRTIO_ID_RNG) {
			tiny_print("seccomp-hook: asking virtio-rng0 to make a forbidden system call");
			outb(HOOK_PORT, HOOK_DEVICE);
			rng_test(&devs[i]);
			wait_for_hook(2, "virtio-rng0");
			tiny_print("seccomp-hook: virtio-rng0 survived its forbidden system call");
			return;
		}
	}
	fail("seccomp-hook: tiny.hook.thread=virtio-rng0 needs a virtio-rng device");
}

static void scenario_seccomp_hook(struct boot_info *bi)
{
	size_t len;
	const char *who = cmdline_param("hook.thread", &len);
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
		wait_for_hook(1, "vmm");
		tiny_print("seccomp-hook: the vmm thread survived its forbidden system call");
		return;
	}
	if (len == 11 && !memcmp(who, "virtio-rng0", 11)) {
		hook_rng_device(bi);
		return;
	}
	fail("tiny.hook.thread=%.*s: expected vmm, vcpu0 or virtio-rng0", (int)len, who);
}
DEFINE_SCENARIO("seccomp-hook", scenario_seccomp_hook);
