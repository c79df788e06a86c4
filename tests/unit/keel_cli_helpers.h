/*
 * Helpers shared by the keel CLI tests: a fake vmkernel on a Unix socket (with a VM's
 * console socket beside it), keel run as a child process against it, a minimal JSON checker
 * and canned VM objects.
 */
#ifndef TEST_KEEL_CLI_HELPERS_H
#define TEST_KEEL_CLI_HELPERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "vmk.pb-c.h"

/* ---- the fake vmkernel -------------------------------------------------------------- */

enum kc_fake_mode { FAKE_REPLY, FAKE_GARBAGE, FAKE_CLOSE, FAKE_HANG };

#define MAX_CASES 64
#define MAX_REQS  16

/* The fake's state; the test reads it (under mu while a keel may run) after keel exited. */
struct kc_fake {
	pthread_mutex_t mu;
	pthread_t th, con_th;
	int listen_fd, con_fd, stop[2];
	enum kc_fake_mode mode;
	struct kb_buf replies[MAX_CASES]; /* packed VmkReply per request case; len 0: default */
	Keel__Vmk__VmkRequest *reqs[MAX_REQS];
	int nreqs, undecodable;
	bool con_close_after_echo;
	char con_in[4096]; /* what the console received */
	size_t con_in_len;
};
extern struct kc_fake kc_fake;

/* The fake's socket and the console socket of the canned VM "web01". */
extern char kc_sock_path[512], kc_con_path[512];

/* Forgets the requests received and the replies set; back to replying code 0. */
void kc_fake_reset(void);
/* The reply to send for requests of case c. */
void kc_fake_set(Keel__Vmk__VmkRequest__ReqCase c, const Keel__Vmk__VmkReply *rp);
void kc_fake_set_mode(enum kc_fake_mode m);
/* The i-th request the fake received (the test reads it after keel exited). */
const Keel__Vmk__VmkRequest *kc_req_at(int i);

/* cmocka group setup and teardown: start and stop the fake's threads; per-test setup
 * resets it. */
int kc_group_setup(void **state);
int kc_group_teardown(void **state);
int kc_test_setup(void **state);

/* ---- running keel ----------------------------------------------------------------- */

/* What the last keel run left: exit code, stdout, stderr and how long it took. */
struct kc_run_result {
	int rc;
	char out[1 << 16];
	char err[1 << 14];
	uint64_t ms;
};
extern struct kc_run_result kc_run;

struct kc_run_opts {
	const char *in;	      /* stdin contents; NULL: /dev/null */
	const char *env_sock; /* KEEL_SOCKET for the child; NULL: unset */
	bool no_socket;	      /* leave out --socket */
	const char *tty;      /* a pty slave to use as stdin */
};

/* Runs build/bin/keel with args (NULL-terminated) and fills kc_run; returns the exit code. */
int kc_run_keel_opts(const struct kc_run_opts *o, const char *const *args);
int kc_run_keel(const char *const *args);

#define KEEL(...) kc_run_keel((const char *const[]){__VA_ARGS__, NULL})
#define assert_has(hay, needle)                                               \
	do {                                                                  \
		if (!strstr((hay), (needle)))                                 \
			fail_msg("expected \"%s\" in:\n%s", (needle), (hay)); \
	} while (0)
#define assert_hasnt(hay, needle)                                                   \
	do {                                                                        \
		if (strstr((hay), (needle)))                                        \
			fail_msg("did not expect \"%s\" in:\n%s", (needle), (hay)); \
	} while (0)

/* ---- a minimal JSON checker ------------------------------------------------------- */

/* stdout is exactly one JSON object on one line. */
void kc_assert_one_json_object(const char *s);

/* ---- canned objects ----------------------------------------------------------------- */

struct kc_canned_vm {
	Keel__Vmk__VmInfo info;
	Keel__Vmk__VmSpec spec;
	Keel__Vmk__Resources res;
	Keel__Vmk__DiskSpec disk;
	Keel__Vmk__DiskSpec *disks[1];
	Keel__Vmk__NicSpec nic;
	Keel__Vmk__NicSpec *nics[1];
};

/* A VM with one disk and one NIC; the strings are borrowed from the caller. */
void kc_canned_vm(struct kc_canned_vm *v, const char *name, const char *state, uint32_t mib);
/* Replies to requests of case c with the one VM v. */
void kc_reply_one_vm(Keel__Vmk__VmkRequest__ReqCase c, struct kc_canned_vm *v);

#endif
