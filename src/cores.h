/* Sharing cores: how many CPUs this process may really use, and an OpenMP team that never spins
 * against the other processes on them. */
#ifndef NK_CORES_H
#define NK_CORES_H

/* CPUs this process may use: its affinity mask, capped by its cgroup's CPU quota (cgroup v2
 * cpu.max, else v1 cpu.cfs_quota_us / cpu.cfs_period_us), rounded up; at least 1. */
int nk_cpus_allowed(void);

/* Call first thing in main, before any OpenMP region. The OpenMP runtime reads its settings when
 * the program loads, so when they need changing the program executes itself again with them set:
 * OMP_WAIT_POLICY=passive unless the environment sets it (waiting threads sleep instead of
 * spinning, so stages that share cores do not starve each other), and OMP_NUM_THREADS =
 * threads when threads > 0, else nk_cpus_allowed() unless the environment sets it. Returns
 * only when the settings are in force (or the re-execution failed: then the team size is set
 * with omp_set_num_threads and the wait policy stays as it is). */
void nk_share_cores(char **argv, int threads);

#endif
