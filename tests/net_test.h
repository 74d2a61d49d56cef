/* Helpers for the network suites: free loopback ports, raw peers, waiting on log files. */
#ifndef NK_NET_TEST_H
#define NK_NET_TEST_H

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "src/nk.h"
#include "stages/link.h"

/* A loopback port nobody listens on now. */
static inline int nt_free_port(void)
{
	return net_free_port();
}

static inline void nt_sleep(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}

/* A TCP connection to 127.0.0.1:port whose reads give up after 3 s; -1 on failure. */
static inline int nt_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {3, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	for (int i = 0; i < 100; i++) {
		if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
			return fd;
		nt_sleep(0.02);
	}
	close(fd);
	return -1;
}

/* A listening socket on 127.0.0.1:port (reads of accepted sockets time out after 3 s). */
static inline int nt_listen(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static inline int nt_accept(int lfd)
{
	struct timeval tv = {5, 0};
	setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	int fd = accept(lfd, NULL, NULL);
	tv.tv_sec = 3;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

/* 1 once the peer has closed fd (reads hit EOF or a reset) within the read timeout. */
static inline int nt_closed_by_peer(int fd)
{
	char buf[4096];
	for (int i = 0; i < 1000; i++) {
		ssize_t k = recv(fd, buf, sizeof buf, 0);
		if (k == 0)
			return 1;
		if (k < 0)
			return errno == ECONNRESET;
	}
	return 0;
}

/* Whether path contains needle, polling up to timeout_s. */
static inline int nt_log_has(const char *path, const char *needle, double timeout_s)
{
	double end = nk_now() + timeout_s;
	do {
		FILE *f = fopen(path, "r");
		if (f) {
			char line[4096];
			while (fgets(line, sizeof line, f))
				if (strstr(line, needle)) {
					fclose(f);
					return 1;
				}
			fclose(f);
		}
		nt_sleep(0.02);
	} while (nk_now() < end);
	return 0;
}

/* Lines of path containing every one of the needles (NULL-terminated). */
static inline int nt_log_count(const char *path, const char *const *needles)
{
	FILE *f = fopen(path, "r");
	int n = 0;
	char line[4096];
	while (f && fgets(line, sizeof line, f)) {
		int all = 1;
		for (const char *const *p = needles; *p; p++)
			all &= strstr(line, *p) != NULL;
		n += all;
	}
	if (f)
		fclose(f);
	return n;
}

#endif
