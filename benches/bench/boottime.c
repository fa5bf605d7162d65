// SPDX-License-Identifier: Apache-2.0
/*
 * The Linux section's boot timer (benches/bench/linux.rs): runs one VMM inside the nested
 * host, copies its stdout (the guest console) to a file and notes when a marker first
 * appears on it.
 *
 *   boottime TIMEOUT_S MARKER OUT_FILE ERR_FILE PROGRAM ARGS...
 *
 * Takes CLOCK_MONOTONIC right before fork (the child then only redirects its output and
 * execs), reads the child's stdout pipe, timestamps the read that completes MARKER, waits
 * with wait4 after the pipe's end and prints one line on stdout:
 *
 *   BOOTTIME marker_ns=N exit_ns=N status=N maxrss_kib=N utime_us=N stime_us=N
 *
 * with times since the start (marker_ns=-1: never seen). After TIMEOUT_S seconds the child
 * is killed (SIGKILL), which shows in status. Built static by the bench, so it needs nothing
 * in the nested host.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t child;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void on_alarm(int sig)
{
	(void)sig;
	if (child > 0)
		kill(child, SIGKILL);
}

int main(int argc, char **argv)
{
	char buf[65536 + 256], carry[256];
	long long t_start, t_marker = -1, t_exit;
	size_t mlen, ncarry = 0;
	struct rusage ru;
	int pfd[2], out, status = 0;
	ssize_t n;

	if (argc < 6) {
		fprintf(stderr, "usage: boottime TIMEOUT_S MARKER OUT_FILE ERR_FILE PROGRAM ARGS...\n");
		return 2;
	}
	mlen = strlen(argv[2]);
	if (mlen == 0 || mlen >= sizeof(carry)) {
		fprintf(stderr, "boottime: the marker must be 1 to 255 bytes\n");
		return 2;
	}
	out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out < 0 || pipe(pfd) < 0) {
		perror("boottime: output");
		return 2;
	}
	signal(SIGALRM, on_alarm);
	t_start = now_ns();
	child = fork();
	if (child < 0) {
		perror("boottime: fork");
		return 2;
	}
	if (child == 0) {
		int err = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int in = open("/dev/null", O_RDONLY);

		if (err < 0 || in < 0) {
			perror("boottime: child files");
			_exit(127);
		}
		dup2(in, 0);
		dup2(pfd[1], 1);
		dup2(err, 2);
		close(pfd[0]);
		execvp(argv[5], argv + 5);
		perror("boottime: exec");
		_exit(127);
	}
	close(pfd[1]);
	alarm((unsigned)atoi(argv[1]));
	for (;;) {
		n = read(pfd[0], buf + ncarry, sizeof(buf) - ncarry);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (write(out, buf + ncarry, (size_t)n) != n) {
			perror("boottime: write");
			return 2;
		}
		if (t_marker < 0) {
			size_t len = ncarry + (size_t)n;

			memcpy(buf, carry, ncarry);
			if (memmem(buf, len, argv[2], mlen)) {
				t_marker = now_ns() - t_start;
			} else {
				/* Keep the last mlen - 1 bytes: the marker may straddle two reads. */
				ncarry = len < mlen - 1 ? len : mlen - 1;
				memcpy(carry, buf + len - ncarry, ncarry);
				continue;
			}
		}
		ncarry = 0;
	}
	if (wait4(child, &status, 0, &ru) < 0) {
		perror("boottime: wait4");
		return 2;
	}
	t_exit = now_ns() - t_start;
	printf("BOOTTIME marker_ns=%lld exit_ns=%lld status=%d maxrss_kib=%ld utime_us=%lld stime_us=%lld\n",
	       t_marker, t_exit, status, ru.ru_maxrss,
	       (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
	       (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec);
	return 0;
}
