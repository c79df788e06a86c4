/*
 * Allocation wrapper. Every allocation in Keel goes through these so tests can make them
 * fail: kb_heap_fail_after(n, count) makes the (n+1)-th allocation from now and the
 * count-1 following ones return NULL. Out-of-memory is returned as -ENOMEM by callers.
 */
#ifndef KB_HEAP_H
#define KB_HEAP_H

#include <stddef.h>

void *kb_malloc(size_t size);
void *kb_calloc(size_t nmemb, size_t size);
void *kb_realloc(void *ptr, size_t size);
char *kb_strdup(const char *s);
void kb_free(void *ptr);

/* Fault injection for tests (not thread-safe against concurrent allocation). n: number of
 * allocations that still succeed; count: how many fail after them (-1: all). */
void kb_heap_fail_after(int n, int count);
/* Turns fault injection off. */
void kb_heap_fail_reset(void);

#endif
