/*
 * The logger. One per process (kb_log_default), or injected into libraries.
 *
 * A line is "<iso8601 time> <level> <ident>[<pid>]: <message>" written with one write(2)
 * to the logger's fd (stderr by default), and kept in an in-memory ring of recent lines.
 * The level is checked before the arguments are evaluated (the macros below).
 */
#ifndef KB_LOG_H
#define KB_LOG_H

#include <stddef.h>
#include <pthread.h>

enum kb_log_level {
	KB_LOG_ERROR = 0,
	KB_LOG_WARN,
	KB_LOG_INFO,
	KB_LOG_DEBUG,
	KB_LOG_TRACE,
};

#define KB_LOG_RING_LINES 256
#define KB_LOG_LINE_MAX	  1024

struct kb_logger {
	int level;	/* lines above this level are dropped */
	int fd;		/* destination, -1 for ring only */
	int tee_fd;	/* a second destination, -1 for none */
	char ident[32]; /* program or component name */
	pthread_mutex_t lock;
	char ring[KB_LOG_RING_LINES][KB_LOG_LINE_MAX];
	unsigned ring_head; /* total lines written; ring index is head % LINES */
};

/* The process logger: level INFO, stderr, ident "keel" until kb_log_init() is called on it. */
extern struct kb_logger kb_log_default;

/* Sets up a caller-allocated logger (no tee). fd is borrowed. */
void kb_log_init(struct kb_logger *lg, const char *ident, int level, int fd);
void kb_log_close(struct kb_logger *lg);
/* Also writes every line to fd (borrowed; -1 to stop). */
void kb_log_tee(struct kb_logger *lg, int fd);

/* Parses "error|warn|info|debug|trace"; returns the level or -EINVAL. */
int kb_log_level_parse(const char *s);
const char *kb_log_level_name(int level);

/* Writes one line. Prefer the macros, which check the level first. Thread-safe. */
void kb_log_emit(struct kb_logger *lg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies up to max recent lines (oldest first) into out, each followed by '\n', the whole
 * NUL-terminated; when out is too small the newest lines that fit are kept. Returns bytes
 * written (without the final NUL). */
size_t kb_log_recent(struct kb_logger *lg, char *out, size_t out_size, unsigned max);

#define kb_log(lg, lvl, ...)                                   \
	do {                                                   \
		if ((lvl) <= (lg)->level)                      \
			kb_log_emit((lg), (lvl), __VA_ARGS__); \
	} while (0)

#define kb_error(...) kb_log(&kb_log_default, KB_LOG_ERROR, __VA_ARGS__)
#define kb_warn(...)  kb_log(&kb_log_default, KB_LOG_WARN, __VA_ARGS__)
#define kb_info(...)  kb_log(&kb_log_default, KB_LOG_INFO, __VA_ARGS__)
#define kb_debug(...) kb_log(&kb_log_default, KB_LOG_DEBUG, __VA_ARGS__)
#define kb_trace(...) kb_log(&kb_log_default, KB_LOG_TRACE, __VA_ARGS__)

#endif
