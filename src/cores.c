/* CPUs allowed by affinity and cgroup quota; OpenMP settings fixed before the runtime starts. */
#define _GNU_SOURCE
#include "src/cores.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define REEXEC_MARK "NK_SHARE_CORES" /* set across the re-execution only */

/* The quota in CPUs from "QUOTA PERIOD" (v2) or two numbers (v1); 0: none. */
static double quota_cpus(long long quota, long long period)
{
	return quota > 0 && period > 0 ? (double)quota / (double)period : 0;
}

static double cgroup_quota(void)
{
	char line[4096], path[4200], q[64];
	long long quota = -1, period = 0;
	FILE *f = fopen("/proc/self/cgroup", "r");
	double cpus = 0;
	while (f && fgets(line, sizeof line, f)) {
		if (strncmp(line, "0::", 3) != 0) /* cgroup v2: one line, "0::/path" */
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", line + 3);
		FILE *m = fopen(path, "r");
		if (!m)
			m = fopen("/sys/fs/cgroup/cpu.max", "r");
		if (m && fscanf(m, "%63s %lld", q, &period) == 2 && strcmp(q, "max") != 0)
			cpus = quota_cpus(atoll(q), period);
		if (m)
			fclose(m);
	}
	if (f)
		fclose(f);
	if (cpus > 0)
		return cpus;
	FILE *a = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r");
	FILE *b = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r");
	if (a && b && fscanf(a, "%lld", &quota) == 1 && fscanf(b, "%lld", &period) == 1)
		cpus = quota_cpus(quota, period);
	if (a)
		fclose(a);
	if (b)
		fclose(b);
	return cpus;
}

int nk_cpus_allowed(void)
{
	int n = 0;
#ifdef __linux__
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		n = CPU_COUNT(&set);
#endif
	if (n <= 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		n = c > 0 ? (int)c : 1;
	}
	double q = cgroup_quota();
	if (q > 0 && q < n) {
		int qi = (int)q;
		n = qi < q ? qi + 1 : qi;
	}
	return n > 0 ? n : 1;
}

void nk_share_cores(char **argv, int threads)
{
	char want[16];
	if (getenv(REEXEC_MARK)) { /* the second start: the settings are in force */
		unsetenv(REEXEC_MARK);
		return;
	}
	int change = 0;
	snprintf(want, sizeof want, "%d", threads > 0 ? threads : nk_cpus_allowed());
	const char *nt = getenv("OMP_NUM_THREADS");
	if (threads > 0 || !nt || !nt[0]) {
		change |= !nt || strcmp(nt, want) != 0;
		setenv("OMP_NUM_THREADS", want, 1);
	}
	if (!getenv("OMP_WAIT_POLICY")) {
		setenv("OMP_WAIT_POLICY", "passive", 1);
		change = 1;
	}
	if (!change)
		return;
	setenv(REEXEC_MARK, "1", 1);
	execv("/proc/self/exe", argv);
	unsetenv(REEXEC_MARK); /* no /proc: the team size at least */
#ifdef _OPENMP
	omp_set_num_threads(atoi(getenv("OMP_NUM_THREADS")));
#endif
}
