/*
 * Error codes and error messages.
 *
 * kb_strerror() names every KB_E* code from a static table and every -errno through
 * strerror_r() into a per-thread buffer, so it never fails and never races. The
 * kb_errmsg helpers build the "outer: inner: cause" text that travels up with an error;
 * text that does not fit in KB_ERRMSG_SIZE is cut, never overflowed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"

#define NCODES (KB_ELAST - KB_EBASE)

static const char *const messages[NCODES] = {
    [KB_EPROTO - KB_EBASE] = "malformed message or stream",
    [KB_ETOOBIG - KB_EBASE] = "size limit exceeded",
    [KB_ECHECKSUM - KB_EBASE] = "checksum mismatch",
    [KB_EVERSION - KB_EBASE] = "unsupported format version",
    [KB_ETRUNCATED - KB_EBASE] = "input ended early",
    [KB_ESTATE - KB_EBASE] = "operation not valid in the current state",
    [KB_ENOTSUP - KB_EBASE] = "operation not supported",
    [KB_EGUEST - KB_EBASE] = "the guest did something invalid",
    [KB_EKVM - KB_EBASE] = "KVM refused the operation",
    [KB_ECONFIG - KB_EBASE] = "invalid configuration",
    [KB_ECANCELED - KB_EBASE] = "operation was cancelled",
    [KB_ETIMEOUT - KB_EBASE] = "operation timed out",
    [KB_ENOTFOUND - KB_EBASE] = "no such object",
    [KB_EEXIST - KB_EBASE] = "object already exists",
    [KB_EFENCED - KB_EBASE] = "host lost its lease: guest execution stopped",
    [KB_ENOTSYNCED - KB_EBASE] = "written, but its directory could not be synced",
};

_Static_assert(NCODES == 16, "every KB_E* code needs a message in messages");

/* Largest errno value Linux uses; anything between -4095 and -1 is treated as -errno. */
#define ERRNO_MAX 4095

static __thread char strerror_buf[128];

const char *kb_strerror(int code)
{
	if (code == 0)
		return "success";
	if (code >= KB_EBASE && code < KB_ELAST && messages[code - KB_EBASE])
		return messages[code - KB_EBASE];
	if (code < 0 && code >= -ERRNO_MAX)
		/* The GNU strerror_r returns either a static string or strerror_buf. */
		return strerror_r(-code, strerror_buf, sizeof(strerror_buf));
	snprintf(strerror_buf, sizeof(strerror_buf), "unknown error %d", code);
	return strerror_buf;
}

void kb_errmsg_setf(struct kb_errmsg *e, const char *fmt, ...)
{
	char tmp[KB_ERRMSG_SIZE];
	va_list ap;

	/* Formatted into a copy so the arguments may name e->msg itself. */
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	memcpy(e->msg, tmp, sizeof(e->msg));
}

void kb_errmsg_wrapf(struct kb_errmsg *e, const char *fmt, ...)
{
	char ctx[KB_ERRMSG_SIZE];
	size_t clen, plen, room;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);

	e->msg[sizeof(e->msg) - 1] = '\0';
	plen = strlen(e->msg);
	clen = strlen(ctx);
	if (plen == 0) {
		memcpy(e->msg, ctx, clen + 1);
		return;
	}
	/* Result: ctx ": " previous, cut at the end of the buffer. The previous message
	 * moves right first (memmove: it overlaps itself), then ctx fills the front. */
	if (clen + 2 >= sizeof(e->msg)) {
		memcpy(e->msg, ctx, clen + 1);
		return;
	}
	room = sizeof(e->msg) - 1 - (clen + 2);
	if (plen > room)
		plen = room;
	memmove(e->msg + clen + 2, e->msg, plen);
	e->msg[clen + 2 + plen] = '\0';
	memcpy(e->msg, ctx, clen);
	e->msg[clen] = ':';
	e->msg[clen + 1] = ' ';
}
