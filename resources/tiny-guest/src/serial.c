// SPDX-License-Identifier: Apache-2.0
/*
 * 8250 UART (COM1) output and a small printf. Every tiny_print() call
 * prints one whole line "tiny: ...\n" under a spinlock so lines from
 * several CPUs never interleave.
 */
#include "tiny.h"
#include "x86.h"

#define COM1		0x3f8
#define UART_THR	0	/* transmit holding register (write) */
#define UART_RBR	0	/* receive buffer register (read) */
#define UART_IER	1	/* interrupt enable */
#define UART_LCR	3	/* line control */
#define UART_MCR	4	/* modem control */
#define UART_LSR	5	/* line status */
#define UART_LSR_DR	0x01	/* data ready */
#define UART_LSR_THRE	0x20	/* transmit holding register empty */
#define UART_LCR_8N1	0x03
#define UART_MCR_DTR_RTS 0x03
#define THRE_SPIN_LIMIT	10000	/* LSR polls before writing anyway */

static volatile uint32_t print_lock;

static void lock(void)
{
	uint32_t old;

	do {
		old = 1;
		__asm__ volatile("xchgl %0, %1"
				 : "+r"(old), "+m"(print_lock) : : "memory");
	} while (old);
}

static void unlock(void)
{
	barrier();
	print_lock = 0;
}

void serial_init(void)
{
	outb(COM1 + UART_IER, 0);	/* polled mode, no interrupts */
	outb(COM1 + UART_LCR, UART_LCR_8N1);
	outb(COM1 + UART_MCR, UART_MCR_DTR_RTS);
}

static void putc_raw(char c)
{
	for (int i = 0; i < THRE_SPIN_LIMIT; i++)
		if (inb(COM1 + UART_LSR) & UART_LSR_THRE)
			break;
	outb(COM1 + UART_THR, (uint8_t)c);
}

static void puts_raw(const char *s, size_t max)
{
	for (; max && *s; max--)
		putc_raw(*s++);
}

int serial_getc(void)
{
	while (!(inb(COM1 + UART_LSR) & UART_LSR_DR))
		;
	return inb(COM1 + UART_RBR);
}

static void put_number(uint64_t v, unsigned int base, int neg,
		       unsigned int width, char pad)
{
	char buf[24];
	unsigned int n = 0;

	do {
		buf[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		buf[n++] = '-';
	for (; width > n; width--)
		putc_raw(pad);
	while (n)
		putc_raw(buf[--n]);
}

/*
 * Supports %% %c %s %.*s %d %u %x with optional '0' flag, width and the
 * length modifiers l, ll, z. That is all this guest needs.
 */
static void vprint_raw(const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		unsigned int width = 0, lng = 0;
		size_t prec = (size_t)-1;
		char pad = ' ';

		if (*fmt != '%') {
			putc_raw(*fmt);
			continue;
		}
		fmt++;
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		if (fmt[0] == '.' && fmt[1] == '*') {
			prec = (size_t)va_arg(ap, int);
			fmt += 2;
		}
		while (*fmt == 'l' || *fmt == 'z') {
			lng = 1;
			fmt++;
		}
		switch (*fmt) {
		case 'c':
			putc_raw((char)va_arg(ap, int));
			break;
		case 's':
			puts_raw(va_arg(ap, const char *), prec);
			break;
		case 'd': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);

			put_number(v < 0 ? -(uint64_t)v : (uint64_t)v, 10,
				   v < 0, width, pad);
			break;
		}
		case 'u':
		case 'x': {
			uint64_t v = lng ? va_arg(ap, uint64_t)
					 : va_arg(ap, unsigned int);

			put_number(v, *fmt == 'x' ? 16 : 10, 0, width, pad);
			break;
		}
		case '\0':
			return;
		default:
			putc_raw('%');
			putc_raw(*fmt);
		}
	}
}

void tiny_vprint(const char *fmt, va_list ap)
{
	lock();
	puts_raw("tiny: ", (size_t)-1);
	vprint_raw(fmt, ap);
	putc_raw('\n');
	unlock();
}

void tiny_print(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tiny_vprint(fmt, ap);
	va_end(ap);
}

/* Print "tiny: FAIL: <reason>" and end the VM (reset, exit code 0). */
void fail(const char *fmt, ...)
{
	va_list ap;

	lock();
	puts_raw("tiny: FAIL: ", (size_t)-1);
	va_start(ap, fmt);
	vprint_raw(fmt, ap);
	va_end(ap);
	putc_raw('\n');
	unlock();
	reset_machine();
}
