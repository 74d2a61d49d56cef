/* necklace-stage: run one stage of a chain on this device; its role comes from its position. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/chain.h"
#include "src/cores.h"
#include "stages/ckpt.h"
#include "stages/stage.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: necklace-stage -c CHAIN -s NAME [--log-dir DIR] [--state-dir DIR] [--seconds S]\n"
		   "                      [--fresh] [--predict [--threshold T]] [--threads N] [--quiet]\n"
		   "\n"
		   "Run stage NAME of the chain: listen for its upstream at its \"listen\" address,\n"
		   "connect to its downstream (reconnecting as needed), train on the batches that\n"
		   "arrive and pass the body output on. The first stage reads the data set; every\n"
		   "data.test_every batches (else at each epoch end) and when it is done it sends the\n"
		   "test set through the chain (each stage logs its test accuracy), then Stop, and\n"
		   "every stage exits. Each stage saves STATEDIR/NAME.ckpt every checkpoint_every\n"
		   "batches or checkpoint_s seconds (whichever comes first) and when it stops, and\n"
		   "resumes from it when started again (it logs phase=ckpt event=resumed, or\n"
		   "event=fresh with the reason).\n"
		   "  -c, --chain FILE     chain file (JSON); every stage must use the same file\n"
		   "  -s, --stage NAME     which stage of the chain this is\n"
		   "      --log-dir DIR    append logfmt lines to DIR/NAME.log (default: logs)\n"
		   "      --state-dir DIR  checkpoints (default: the chain's state_dir, else state/CHAIN)\n"
		   "      --fresh          do not resume from a checkpoint (it is overwritten)\n"
		   "      --seconds S      first stage: train S seconds, then test and stop the chain;\n"
		   "                       other stages: stop after S seconds at the latest\n"
		   "      --inbox N        train batches waiting at most (default 4; older ones are dropped)\n"
		   "      --predict        load the checkpoint and answer the test set instead of\n"
		   "                       training: samples leave at the first stage whose head is\n"
		   "                       confident enough (exit.threshold / exit.entropy); the last\n"
		   "                       stage reached prints the report (phase=predict)\n"
		   "      --threshold T    predict: every stage exits samples whose top softmax\n"
		   "                       probability is >= T (0..1; 1: none before the last stage)\n"
		   "      --rate R         first stage: send R batches a second (default: data.rate)\n"
		   "      --wait S         how long an unreachable downstream is waited for before a\n"
		   "                       stage answers itself (predict) or skips test batches (default 3)\n"
		   "      --threads N      OpenMP threads (default: OMP_NUM_THREADS, else the CPUs this\n"
		   "                       process may use: its affinity mask and cgroup CPU quota).\n"
		   "                       Waiting threads sleep (OMP_WAIT_POLICY=passive unless set),\n"
		   "                       so stages sharing cores do not starve each other\n"
		   "  -q, --quiet          do not also print the lines on stdout\n"
		   "  -h, --help           this text\n"
		   "SIGINT/SIGTERM stop the stage cleanly. Exit status: 0 done, 1 runtime failure,\n"
		   "2 bad usage, chain file or checkpoint (another chain's, corrupt, or missing in\n"
		   "predict mode).\n");
}

static int positive(const char *opt, const char *arg, double *out)
{
	char *end;
	*out = strtod(arg, &end);
	if (*end || !(*out > 0)) {
		fprintf(stderr, "necklace-stage: %s wants a positive number, not '%s'\n", opt, arg);
		return 0;
	}
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"chain", required_argument, 0, 'c'}, {"stage", required_argument, 0, 's'},
		{"log-dir", required_argument, 0, 'l'}, {"seconds", required_argument, 0, 't'},
		{"inbox", required_argument, 0, 'i'}, {"quiet", no_argument, 0, 'q'},
		{"state-dir", required_argument, 0, 'S'}, {"fresh", no_argument, 0, 'F'},
		{"predict", no_argument, 0, 'P'}, {"threshold", required_argument, 0, 'T'},
		{"wait", required_argument, 0, 'w'}, {"rate", required_argument, 0, 'r'},
		{"threads", required_argument, 0, 'j'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	const char *chain_path = NULL, *name = NULL;
	struct stage_opts o = {.logdir = "logs", .echo = 1, .stop = &stop_flag, .threshold = -1};
	char *end;
	double v;
	int c, threads = 0;
	while ((c = getopt_long(argc, argv, "c:s:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': chain_path = optarg; break;
		case 's': name = optarg; break;
		case 'l': o.logdir = optarg; break;
		case 'q': o.echo = 0; break;
		case 't':
			if (!positive("--seconds", optarg, &o.seconds))
				return 2;
			break;
		case 'i':
			if (!positive("--inbox", optarg, &v) || v != (int)v)
				return 2;
			o.inbox = (int)v;
			break;
		case 'S': o.state_dir = optarg; break;
		case 'F': o.fresh = 1; break;
		case 'P': o.predict = 1; break;
		case 'T':
			o.threshold = strtod(optarg, &end);
			if (*end || !(o.threshold >= 0 && o.threshold <= 1)) {
				fprintf(stderr, "necklace-stage: --threshold wants a probability in [0, 1], "
					"not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'w':
			if (!positive("--wait", optarg, &o.wait_s))
				return 2;
			break;
		case 'r':
			if (!positive("--rate", optarg, &o.rate))
				return 2;
			break;
		case 'j':
			if (!positive("--threads", optarg, &v) || v != (int)v || v > 1024)
				return 2;
			threads = (int)v;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!chain_path || !name || optind < argc) {
		usage(stderr);
		return 2;
	}
	if (o.threshold >= 0 && !o.predict) {
		fprintf(stderr, "necklace-stage: --threshold is for predict mode (--predict)\n");
		return 2;
	}
	nk_share_cores(argv, threads); /* may run this program again with the settings in force */
	char err[NK_ERR_LEN] = "";
	struct chain *ch = NULL;
	int rc = chain_load(&ch, chain_path, err), idx = -1;
	if (rc == 0 && (idx = chain_stage_index(ch, name)) < 0)
		rc = nk_errf(err, NK_ENOENT, "%s: no stage named '%s'", chain_path, name);
	int in_c = 0, in_h = 0, in_w = 0;
	char derr[NK_ERR_LEN];
	/* with the data set here, check every stage's shapes; else only the network part */
	int drc = rc ? 0 : stage_data_dims(ch, &in_c, &in_h, &in_w, derr);
	if (drc) {
		if (idx == 0 || drc == NK_ESHAPE) {
			snprintf(err, sizeof err, "%s", derr);
			rc = drc;
		}
		in_c = 0; /* a later stage may still know its input from its checkpoint */
	}
	o.data_c = in_c;
	o.data_h = in_h;
	o.data_w = in_w;
	if (rc == 0)
		rc = stage_check_chain(ch, in_c, in_h, in_w, err);
	if (rc == 0 && (rc = stage_read_ckpt(ch, idx, &o, NULL, err)) == NK_ENOENT && !o.predict)
		rc = 0; /* a fresh start */
	if (rc) {
		fprintf(stderr, "necklace-stage: %s\n", err);
		chain_free(ch);
		return rc == NK_ENOMEM ? 1 : 2;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = stage_run(ch, idx, &o, err);
	if (rc)
		fprintf(stderr, "necklace-stage: %s: %s\n", name, err);
	chain_free(ch);
	return rc == 0 ? 0 : stage_err_is_config(rc) ? 2 : 1;
}
