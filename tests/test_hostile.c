/* Hostile peers against a running three-stage chain (necklace-stage processes on loopback): bad
 * first batches do not fix a stage's input shape, batches of +Inf or absurd values do not poison
 * its model, a live upstream cannot be replaced or stopped by a peer that knows the chain file,
 * slow Hellos cannot lock the upstream out, large frames are refused before a Hello. In every
 * case the attacked stage stays alive, keeps training, and the sink still learns; the train
 * batches are accounted for on every link. */
#include <math.h>
#include <sys/socket.h>

#include "src/chain.h"
#include "stages/wire.h"
#include "tests/attack.h"
#include "tests/run_test.h"

#define NTRAIN 2000
#define NTEST 500
#define S1_IN_C 8 /* s1's input: s0's body output, 8 x SIDE x SIDE */

struct attack {
	struct run r;
	struct chain *c;
	int port1; /* s1's listen port */
};

/* A chain trained for `epochs` (bounded by batches, not seconds: every stage trains every batch
 * at any speed, see setup_run_epochs). */
static void setup(struct attack *a, int epochs, const char *top)
{
	char err[NK_ERR_LEN] = "";
	setup_run_epochs(&a->r, epochs, NTRAIN, NTEST, 90, 0.01, top);
	cr_assert_eq(chain_load(&a->c, a->r.chain, err), 0, "%s", err);
	const char *colon = strrchr(a->c->stages[1].listen, ':');
	cr_assert_not_null(colon);
	a->port1 = atoi(colon + 1);
}

static void finish(struct attack *a)
{
	chain_free(a->c);
	remove_run(&a->r);
}

/* Connect to s1 and pass its Hello as `sender` would (the chain file is all it takes). */
static int hello_as(struct attack *a, const char *sender)
{
	int fd = nt_connect(a->port1);
	cr_assert_geq(fd, 0);
	cr_assert_eq(attack_hello(fd, a->c, sender), 0);
	return fd;
}

/* Every stage ended cleanly, trained, and the sink and s1 learnt (chance is 0.1); s1 refused
 * s1_refused_train train batches, and took `extra` train batches from an attacker. */
static void assert_chain_healthy(struct attack *a, long s1_refused_train, long extra)
{
	for (int i = 0; i < 3; i++)
		expect_clean_exit(&a->r, i, 400);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(count(a->r.log[i], " event=failed ", ""), 0, "%s failed", names[i]);
	cr_assert_geq(count(a->r.log[1], " phase=train ", " loss="), 3, "s1 logged no train lines");
	const char *s1_test[] = {" phase=test ", NULL};
	double acc1 = last_value(a->r.log[1], s1_test, "test_acc"), acc2 = sink_test_acc(&a->r);
	cr_assert_gt(acc1, 0.5, "s1 test_acc %.3f", acc1);
	cr_assert_gt(acc2, 0.5, "sink test_acc %.3f", acc2);
	struct counts c[3];
	for (int i = 0; i < 3; i++)
		c[i] = counts_of(a->r.log[i]);
	cr_assert_geq(c[0].sent, 1, "s0 sent nothing");
	cr_assert_geq(c[1].sent, 1, "s1 sent nothing");
	cr_assert_eq(c[1].refused, s1_refused_train);
	expect_accounted(c[0], c[1], extra, "s0 -> s1");
	expect_accounted(c[1], c[2], 0, "s1 -> s2");
}

Test(hostile, bad_first_batches_fix_nothing_and_poison_nothing, .timeout = 600)
{
	struct attack a;
	setup(&a, 2, "\"checkpoint_every\": 20,");
	a.r.pid[2] = spawn_stage(&a.r, 2, NULL);
	a.r.pid[1] = spawn_stage(&a.r, 1, NULL);
	cr_assert(nt_log_has(a.r.log[1], " event=listening ", 10), "s1 never listened");
	/* Before the real upstream, a peer with the chain file sends what would have fixed s1's
	 * shape to garbage, or made it run out of memory, or overflow, or learn from +Inf. */
	int fd = hello_as(&a, "s0");
	cr_assert(nt_log_has(a.r.log[1], " event=connected link=up peer=s0", 5));
	struct attack_case k[ATTACK_MAX_CASES];
	int nk = attack_cases(k, S1_IN_C, SIDE, SIDE), nref = 0, nref_train = 0, ntrain = 0, ntaken = 0;
	for (int i = 0; i < nk; i++) {
		char needle[64];
		cr_assert_eq(attack_batch(fd, (uint64_t)i + 1, k[i].ph, k[i].n, k[i].c, k[i].h, k[i].w, k[i].v), 0);
		ntrain += k[i].ph == WIRE_TRAIN;
		if (k[i].refused) { /* one at a time: none is dropped stale from the inbox */
			snprintf(needle, sizeof needle, "detail=\"batch %d: ", i + 1);
			cr_assert(nt_log_has(a.r.log[1], needle, 10), "s1 did not refuse batch %d", i + 1);
			nref++;
			nref_train += k[i].ph == WIRE_TRAIN;
		} else {
			nt_sleep(0.5);
			ntaken++;
		}
	}
	close(fd);
	cr_assert(nt_log_has(a.r.log[1], " event=lost link=up ", 5));
	a.r.pid[0] = spawn_stage(&a.r, 0, NULL);
	assert_chain_healthy(&a, nref_train, ntrain);
	cr_assert_eq(count(a.r.log[1], " event=bad_batch ", ""), nref, "one bad_batch line per refused batch");
	cr_assert_eq(count(a.r.log[1], " event=bad_batch ", "not finite"), 2);
	cr_assert_eq(counts_of(a.r.log[1]).skipped, ntaken, "the absurd batches were trained on");
	finish(&a);
}

Test(hostile, live_upstream_is_neither_replaced_nor_stopped, .timeout = 600)
{
	struct attack a;
	setup(&a, 10, ""); /* long enough for the attacks to find it running */
	for (int i = 2; i >= 0; i--)
		a.r.pid[i] = spawn_stage(&a.r, i, NULL);
	cr_assert(nt_log_has(a.r.log[1], " phase=train ", 20), "s1 never trained");
	int fd = hello_as(&a, "s0");
	attack_stop(fd, "hijacked"); /* the stage may have closed already */
	cr_assert(nt_closed_by_peer(fd), "s1 kept the second upstream");
	close(fd);
	cr_assert(nt_log_has(a.r.log[1], " event=refused link=up peer=? want=s0 ", 5));
	cr_assert_eq(count(a.r.log[1], " event=refused link=up peer=? want=s0 ", " reason=busy "), 1);
	/* random bytes are not named after the neighbour they do not prove to be */
	fd = nt_connect(a.port1);
	cr_assert_geq(fd, 0);
	cr_assert_eq(send(fd, "\x00\x00\x00\x10garbage-garbage!", 20, MSG_NOSIGNAL), 20);
	cr_assert(nt_closed_by_peer(fd));
	close(fd);
	cr_assert(nt_log_has(a.r.log[1], " reason=garbage ", 5));
	cr_assert_eq(count(a.r.log[1], " event=dropped link=up peer=? want=s0 ", " reason=garbage "), 1);
	long before = count(a.r.log[1], " phase=train ", " loss=");
	cr_assert(nt_log_has(a.r.log[1], " phase=test ", 30));
	assert_chain_healthy(&a, 0, 0);
	cr_assert_gt(count(a.r.log[1], " phase=train ", " loss="), before, "s1 stopped training");
	cr_assert_eq(count(a.r.log[1], "hijacked", ""), 0, "the stranger's Stop was taken");
	cr_assert_eq(count(a.r.log[2], "hijacked", ""), 0);
	cr_assert_eq(count(a.r.log[1], " event=connected link=up ", ""), 1, "the upstream was replaced");
	finish(&a);
}

/* Open n connections to s1 that each send the first byte of a frame that never ends. */
static void dribblers(struct attack *a, int *fds, int n)
{
	for (int i = 0; i < n; i++) {
		fds[i] = nt_connect(a->port1);
		cr_assert_geq(fds[i], 0);
		cr_assert_eq(attack_dribble(fds[i], 0), 0);
	}
}

/* A byte every 0.2 s on each for `secs` (or until all are closed, or until *stop_when appears in
 * s1's log); how many are still open. */
static int dribble_for(struct attack *a, int *fds, int n, double secs, const char *stop_when)
{
	int open_left = n;
	double end = nk_now() + secs;
	for (int k = 1; nk_now() < end && open_left > 0; k++) {
		open_left = 0;
		for (int i = 0; i < n; i++)
			open_left += attack_dribble(fds[i], k) == 0;
		if (stop_when && nt_log_has(a->r.log[1], stop_when, 0))
			break;
		nt_sleep(0.2);
	}
	return open_left;
}

Test(hostile, slow_hellos_never_lock_the_upstream_out, .timeout = 600)
{
	struct attack a;
	enum { N = 80 }; /* more than a stage's Hello slots */
	int fds[N];
	setup(&a, 2, "");
	a.r.pid[2] = spawn_stage(&a.r, 2, NULL);
	a.r.pid[1] = spawn_stage(&a.r, 1, NULL);
	cr_assert(nt_log_has(a.r.log[1], " event=listening ", 10));
	/* the deadline: bytes do not extend it */
	dribblers(&a, fds, N);
	int open_left = dribble_for(&a, fds, N, 8, NULL);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	cr_assert_eq(open_left, 0, "%d connections that never finished a Hello are still open after "
		     "8 s of a byte every 0.2 s (the deadline is 5 s)", open_left);
	cr_assert_geq(count(a.r.log[1], " reason=timeout ", "no complete hello"), 1);
	/* the slots: the real upstream gets in while as many dribblers hold them */
	dribblers(&a, fds, N);
	a.r.pid[0] = spawn_stage(&a.r, 0, NULL);
	dribble_for(&a, fds, N, 60, " event=connected link=up peer=s0");
	for (int i = 0; i < N; i++)
		close(fds[i]);
	cr_assert(nt_log_has(a.r.log[1], " event=connected link=up peer=s0", 10), "s0 was locked out");
	assert_chain_healthy(&a, 0, 0);
	finish(&a);
}

Test(hostile, large_frames_before_a_hello_are_refused, .timeout = 60)
{
	struct attack a;
	setup(&a, 1, "");
	a.r.pid[1] = spawn_stage(&a.r, 1, NULL);
	cr_assert(nt_log_has(a.r.log[1], " event=listening ", 10));
	for (int i = 0; i < 20; i++) { /* each would pin 64 MiB once read */
		int fd = nt_connect(a.port1);
		cr_assert_geq(fd, 0);
		const uint8_t big[4] = {0x03, 0xff, 0xff, 0xff};
		cr_assert_eq(send(fd, big, 4, MSG_NOSIGNAL), 4);
		cr_assert(nt_closed_by_peer(fd), "connection %d kept open", i);
		close(fd);
	}
	cr_assert_eq(count(a.r.log[1], " event=dropped ", " reason=oversized "), 20);
	cr_assert_eq(count(a.r.log[1], " event=dropped ", "limit 1024"), 20);
	kill(a.r.pid[1], SIGTERM);
	int st = wait_for(a.r.pid[1], 20);
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "s1 did not stop cleanly: %d", st);
	a.r.pid[1] = 0;
	finish(&a);
}
