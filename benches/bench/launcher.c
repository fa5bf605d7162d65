// SPDX-License-Identifier: Apache-2.0
/*
 * The bench's launcher: a tiny process (so that ru_maxrss of its child is the
 * child's own peak, not inherited from a large parent across fork) that runs
 * one VMM and reports how it went.
 *
 *   launcher RESULT_FILE PROGRAM ARGS...
 *
 * Becomes a process-group leader (the bench kills the group on a time-out),
 * takes CLOCK_MONOTONIC right before fork, runs PROGRAM, waits with wait4 and
 * writes one line to RESULT_FILE:
 *
 *   t_start_ns t_exit_ns wait_status maxrss_kib utime_us stime_us
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct rusage ru;
	long long t_start, t_exit;
	int status = 0;
	pid_t pid;
	FILE *out;

	if (argc < 3) {
		fprintf(stderr, "usage: launcher RESULT_FILE PROGRAM ARGS...\n");
		return 2;
	}
	setpgid(0, 0);
	t_start = now_ns();
	pid = fork();
	if (pid < 0) {
		perror("launcher: fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		perror("launcher: exec");
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("launcher: wait4");
		return 2;
	}
	t_exit = now_ns();
	out = fopen(argv[1], "w");
	if (!out) {
		perror("launcher: result file");
		return 2;
	}
	fprintf(out, "%lld %lld %d %ld %lld %lld\n", t_start, t_exit, status,
		ru.ru_maxrss,
		(long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
		(long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec);
	return fclose(out) ? 2 : 0;
}
