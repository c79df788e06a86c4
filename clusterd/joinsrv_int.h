/*
 * Internals shared by the join port's files: joinsrv.c (the thread, the queue to the loop,
 * start and stop) and joinsrv_steps.c (what each step does on the loop). The rest of
 * clusterd uses cd_joinsrv_start() and cd_joinsrv_stop() (daemon.h).
 *
 * A job is one request: the thread allocates it and queues it; the loop runs its step and
 * ends it with exactly one reply (cd__job_finish), then the thread sends the reply and
 * frees the job, or the loop frees it when the thread abandoned it (the port stopping).
 */
#ifndef CD_JOINSRV_INT_H
#define CD_JOINSRV_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "clusterd/ca.h"
#include "clusterd/daemon.h"
#include "clusterd/token.h"
#include "lib/buf.h"

struct cd_job {
	struct cd_daemon *d;
	Keel__Cluster__JoinRequest *rq;
	uint64_t peer_id; /* host id of a verified member certificate; 0: none */
	char peer_ip[INET_ADDRSTRLEN];
	struct kb_buf out; /* the packed JoinReply */
	bool done, abandoned;
	struct cd_job *next;
	char *cert_pem; /* JOIN: issued before the proposal, sent only if it commits */
	char token[CD_TOKEN_TEXT_SIZE];
	uint64_t token_expires_s;
	uint64_t target; /* LEAVE / REMOVE_HOST: the host */
};

struct cd_joinsrv {
	struct cd_daemon *d;
	int lfd, wake[2];
	pthread_t thread;
	bool thread_on;
	SSL_CTX *ctx;
	char ca_pem[CD_PEM_MAX + 1];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cd_job *queue; /* thread -> loop, guarded by mu */
	bool stopping;	      /* guarded by mu */
	uv_async_t async;
};

/* Ends a job with reply rp (borrowed for the call): packs it and wakes the thread (or
 * frees an abandoned job). Loop thread. */
void cd__job_finish(struct cd_job *j, Keel__Cluster__JoinReply *rp);
/* Ends a job with a refusal: code and the formatted message, logged with the peer's
 * address. Loop thread. */
void cd__job_error(struct cd_job *j, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The IPv4 address part of "A.B.C.D:PORT" into ip. 0 or -EINVAL. */
int cd__joinsrv_ip_of(const char *addr, char ip[INET_ADDRSTRLEN]);
/* Runs the step of a job the loop took from the queue (joinsrv_steps.c); the job ends
 * through cd__job_finish, at once or when its command is done. Loop thread. */
void cd__joinsrv_process(struct cd_job *j);

#endif
