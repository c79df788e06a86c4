/*
 * The logger.
 *
 * kb_log_emit() formats "<time> <LEVEL> <ident>[<pid>]: <message>" into a stack buffer,
 * stores it in the logger's ring of recent lines and writes it with a single write(2),
 * so concurrent writers (threads or processes sharing the fd) never interleave inside a
 * line. Lines longer than KB_LOG_LINE_MAX - 1 bytes are cut. A failed or short write is
 * ignored: logging must never become an error path of its own. errno is preserved so a
 * caller may log and then return -errno.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/time.h"

struct kb_logger kb_log_default = {
    .level = KB_LOG_INFO,
    .fd = 2,
    .tee_fd = -1,
    .ident = "keel",
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};
static const char *const level_tags[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};
#define LEVEL_COUNT ((int)(sizeof(level_names) / sizeof(level_names[0])))

void kb_log_init(struct kb_logger *lg, const char *ident, int level, int fd)
{
	size_t n = strnlen(ident, sizeof(lg->ident) - 1);

	lg->level = level;
	lg->fd = fd;
	lg->tee_fd = -1;
	memcpy(lg->ident, ident, n);
	lg->ident[n] = '\0';
	pthread_mutex_init(&lg->lock, NULL);
	memset(lg->ring, 0, sizeof(lg->ring));
	lg->ring_head = 0;
}

void kb_log_tee(struct kb_logger *lg, int fd)
{
	pthread_mutex_lock(&lg->lock);
	lg->tee_fd = fd;
	pthread_mutex_unlock(&lg->lock);
}

void kb_log_close(struct kb_logger *lg)
{
	pthread_mutex_destroy(&lg->lock);
}

int kb_log_level_parse(const char *s)
{
	for (int i = 0; i < LEVEL_COUNT; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	return -EINVAL;
}

const char *kb_log_level_name(int level)
{
	if (level < 0 || level >= LEVEL_COUNT)
		return "unknown";
	return level_names[level];
}

void kb_log_emit(struct kb_logger *lg, int level, const char *fmt, ...)
{
	char line[KB_LOG_LINE_MAX + 1]; /* room for the '\n' after a full-length line */
	char stamp[32];
	int saved_errno = errno;
	size_t len;
	ssize_t w;
	va_list ap;
	int n;

	if (level > lg->level)
		return;
	kb_time_fmt(kb_wall_ns(), stamp, sizeof(stamp));
	n = snprintf(line, KB_LOG_LINE_MAX, "%s %s %s[%d]: ", stamp,
		     level >= 0 && level < LEVEL_COUNT ? level_tags[level] : "?", lg->ident,
		     (int)getpid());
	len = n < 0 ? 0 : ((size_t)n < KB_LOG_LINE_MAX ? (size_t)n : KB_LOG_LINE_MAX - 1);
	errno = saved_errno; /* for %m */
	va_start(ap, fmt);
	n = vsnprintf(line + len, KB_LOG_LINE_MAX - len, fmt, ap);
	va_end(ap);
	if (n > 0)
		len += (size_t)n < KB_LOG_LINE_MAX - len ? (size_t)n : KB_LOG_LINE_MAX - 1 - len;
	while (len > 0 && line[len - 1] == '\n')
		len--;
	line[len] = '\0';

	pthread_mutex_lock(&lg->lock);
	memcpy(lg->ring[lg->ring_head % KB_LOG_RING_LINES], line, len + 1);
	lg->ring_head++;
	if (lg->fd >= 0) {
		/* Written under the lock so the fd sees lines in ring order. */
		line[len] = '\n';
		do
			w = write(lg->fd, line, len + 1);
		while (w < 0 && errno == EINTR);
	}
	if (lg->tee_fd >= 0) {
		line[len] = '\n';
		do
			w = write(lg->tee_fd, line, len + 1);
		while (w < 0 && errno == EINTR);
	}
	pthread_mutex_unlock(&lg->lock);
	errno = saved_errno;
}

size_t kb_log_recent(struct kb_logger *lg, char *out, size_t out_size, unsigned max)
{
	unsigned avail, take, first;
	size_t need = 1, off = 0;

	if (out_size == 0)
		return 0;
	pthread_mutex_lock(&lg->lock);
	avail = lg->ring_head < KB_LOG_RING_LINES ? lg->ring_head : KB_LOG_RING_LINES;
	if (max > avail)
		max = avail;
	/* Keep the newest lines that fit, then copy them oldest first. */
	for (take = 0; take < max; take++) {
		const char *l = lg->ring[(lg->ring_head - 1 - take) % KB_LOG_RING_LINES];
		size_t sz = strlen(l) + 1;

		if (need + sz > out_size)
			break;
		need += sz;
	}
	first = lg->ring_head - take;
	for (unsigned i = 0; i < take; i++) {
		const char *l = lg->ring[(first + i) % KB_LOG_RING_LINES];
		size_t sz = strlen(l);

		memcpy(out + off, l, sz);
		out[off + sz] = '\n';
		off += sz + 1;
	}
	out[off] = '\0';
	pthread_mutex_unlock(&lg->lock);
	return off;
}
