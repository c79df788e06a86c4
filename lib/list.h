/*
 * Intrusive doubly linked lists (circular, with a head node), as in the Linux kernel.
 * The list never allocates; entries embed a struct kb_list.
 */
#ifndef KB_LIST_H
#define KB_LIST_H

#include <stddef.h>
#include <stdbool.h>

struct kb_list {
	struct kb_list *next, *prev;
};

#define kb_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define KB_LIST_INIT(name)       \
	{                        \
		&(name), &(name) \
	}

static inline void kb_list_init(struct kb_list *h)
{
	h->next = h;
	h->prev = h;
}

static inline bool kb_list_empty(const struct kb_list *h)
{
	return h->next == h;
}

static inline void kb__list_insert(struct kb_list *n, struct kb_list *prev, struct kb_list *next)
{
	next->prev = n;
	n->next = next;
	n->prev = prev;
	prev->next = n;
}

static inline void kb_list_add(struct kb_list *h, struct kb_list *n)
{
	kb__list_insert(n, h, h->next);
}

static inline void kb_list_add_tail(struct kb_list *h, struct kb_list *n)
{
	kb__list_insert(n, h->prev, h);
}

static inline void kb_list_del(struct kb_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n;
	n->prev = n;
}

#define kb_list_entry(ptr, type, member) kb_container_of(ptr, type, member)

#define kb_list_for_each(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

#define kb_list_for_each_safe(pos, tmp, head)                            \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); \
	     (pos) = (tmp), (tmp) = (pos)->next)

#endif
