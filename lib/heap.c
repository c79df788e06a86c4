/*
 * Allocation wrappers with fault injection.
 *
 * In production the only cost over malloc() is one relaxed atomic load of the "armed"
 * flag. A test arms injection with kb_heap_fail_after(); from then on every allocation
 * (malloc, calloc, realloc, strdup) counts down the successes left, then fails the
 * requested number of times and disarms itself. Frees are never counted.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/heap.h"

static int heap_armed;	   /* read atomically by every allocation */
static int heap_ok_left;   /* allocations that still succeed */
static int heap_fail_left; /* failures to come after them; -1: all */

static bool heap_should_fail(void)
{
	if (!__atomic_load_n(&heap_armed, __ATOMIC_RELAXED))
		return false;
	if (heap_ok_left > 0) {
		heap_ok_left--;
		return false;
	}
	if (heap_fail_left > 0 && --heap_fail_left == 0)
		__atomic_store_n(&heap_armed, 0, __ATOMIC_RELAXED);
	return true;
}

void *kb_malloc(size_t size)
{
	if (heap_should_fail())
		return NULL;
	return malloc(size);
}

void *kb_calloc(size_t nmemb, size_t size)
{
	if (heap_should_fail())
		return NULL;
	return calloc(nmemb, size);
}

void *kb_realloc(void *ptr, size_t size)
{
	if (heap_should_fail())
		return NULL;
	return realloc(ptr, size);
}

char *kb_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = kb_malloc(n);

	if (p)
		memcpy(p, s, n);
	return p;
}

void kb_free(void *ptr)
{
	free(ptr);
}

void kb_heap_fail_after(int n, int count)
{
	if (count == 0) {
		kb_heap_fail_reset();
		return;
	}
	heap_ok_left = n > 0 ? n : 0;
	heap_fail_left = count < 0 ? -1 : count;
	__atomic_store_n(&heap_armed, 1, __ATOMIC_RELEASE);
}

void kb_heap_fail_reset(void)
{
	__atomic_store_n(&heap_armed, 0, __ATOMIC_RELEASE);
	heap_ok_left = 0;
	heap_fail_left = 0;
}
