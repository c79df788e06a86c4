/*
 * Error codes shared by every Keel component.
 *
 * Functions return 0 or a negative code. System-facing code returns -errno; domain
 * outcomes use the KB_E* codes below, which live far below any errno value. kb_strerror()
 * names both kinds. Objects that cross an API carry a struct kb_errmsg; each layer adds
 * context with kb_errmsg_wrapf() as the error travels up.
 */
#ifndef KB_ERR_H
#define KB_ERR_H

#include <stddef.h>

enum {
	KB_EBASE = -10000,
	KB_EPROTO = KB_EBASE, /* malformed message or stream */
	KB_ETOOBIG,	      /* a size limit was exceeded */
	KB_ECHECKSUM,	      /* checksum mismatch */
	KB_EVERSION,	      /* unsupported format version */
	KB_ETRUNCATED,	      /* input ended early */
	KB_ESTATE,	      /* operation not valid in the current state */
	KB_ENOTSUP,	      /* operation not supported */
	KB_EGUEST,	      /* the guest did something invalid */
	KB_EKVM,	      /* KVM refused an operation */
	KB_ECONFIG,	      /* invalid configuration */
	KB_ECANCELED,	      /* operation was cancelled */
	KB_ETIMEOUT,	      /* operation timed out */
	KB_ENOTFOUND,	      /* no such object */
	KB_EEXIST,	      /* object already exists */
	KB_EFENCED,	      /* host lost its lease: guest execution stopped */
	KB_ENOTSYNCED,	      /* written, but its directory could not be synced */
	KB_ELAST
};

/* Returns a static, human-readable message for a negative KB_E* code or -errno.
 * Thread-safe. Unknown codes get a generic message naming the number. */
const char *kb_strerror(int code);

#define KB_ERRMSG_SIZE 512

/* A message buffer carried by objects that cross an API. */
struct kb_errmsg {
	char msg[KB_ERRMSG_SIZE];
};

/* Replaces the message. printf-style. */
void kb_errmsg_setf(struct kb_errmsg *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prepends context: "context: previous message". printf-style. */
void kb_errmsg_wrapf(struct kb_errmsg *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
