// SPDX-License-Identifier: Apache-2.0
/*
 * The basic scenarios (tiny.test=<name>). They run after all the common
 * checks of main.c. More scenarios go into their own files with
 * DEFINE_SCENARIO; the Makefile builds every .c file in src/.
 */
#include "tiny.h"

/* Only the common checks. */
static void scenario_boot(struct boot_info *bi)
{
	(void)bi;
}
DEFINE_SCENARIO("boot", scenario_boot);

/* Keep the VM alive until a byte arrives on the serial port. */
static void scenario_wait_input(struct boot_info *bi)
{
	(void)bi;
	tiny_print("waiting for input");
	tiny_print("got input 0x%02x", serial_getc());
}
DEFINE_SCENARIO("wait-input", scenario_wait_input);

/* #UD with an empty IDT: #UD -> #GP -> #DF -> triple fault (shutdown). */
static void scenario_triple_fault(struct boot_info *bi)
{
	static const struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) empty_idt = { 0, 0 };

	(void)bi;
	tiny_print("causing a triple fault");
	__asm__ volatile("lidt %0\n\tud2" : : "m"(empty_idt));
	halt_forever();
}
DEFINE_SCENARIO("triple-fault", scenario_triple_fault);

static void scenario_halt(struct boot_info *bi)
{
	(void)bi;
	tiny_print("halting forever");
	halt_forever();
}
DEFINE_SCENARIO("halt", scenario_halt);

/*
 * An instruction KVM's instruction emulator does not implement (int3), executed with an
 * empty IDT. Where the guest runs on hardware virtualization (VT-x/AMD-V) this is #BP ->
 * #GP -> #DF -> triple fault; where KVM emulates guest kernel code (nested PVM without
 * VT-x) the emulator gives up and the VMM sees KVM_EXIT_INTERNAL_ERROR. Either way the
 * VMM must stop with one plain-words error. The function is exempt from the Makefile's
 * forbidden-instruction check by its name.
 */
void __attribute__((noinline)) unsupported_insn_probe(void)
{
	static const struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) empty_idt = { 0, 0 };

	__asm__ volatile("lidt %0\n\tint3" : : "m"(empty_idt));
}

static void scenario_unsupported_insn(struct boot_info *bi)
{
	(void)bi;
	tiny_print("executing int3 with an empty IDT");
	unsupported_insn_probe();
	halt_forever();
}
DEFINE_SCENARIO("unsupported-insn", scenario_unsupported_insn);
