/*
 * Tests for lib/list.h: insertion order at head and tail, deletion while iterating, and
 * container_of over an embedded node.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/list.h"

struct item {
	int value;
	struct kb_list node;
};

static int collect(struct kb_list *head, int *out, int max)
{
	struct kb_list *pos;
	int n = 0;

	kb_list_for_each(pos, head)
	{
		if (n < max)
			out[n] = kb_list_entry(pos, struct item, node)->value;
		n++;
	}
	return n;
}

static void test_order(void **state)
{
	struct kb_list head = KB_LIST_INIT(head);
	struct item it[4];
	int got[8];

	assert_true(kb_list_empty(&head));
	for (int i = 0; i < 4; i++)
		it[i].value = i;
	kb_list_add_tail(&head, &it[1].node);
	kb_list_add_tail(&head, &it[2].node);
	kb_list_add(&head, &it[0].node);
	kb_list_add_tail(&head, &it[3].node);
	assert_false(kb_list_empty(&head));
	assert_int_equal(collect(&head, got, 8), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(got[i], i);
	assert_ptr_equal(head.prev, &it[3].node);
}

static void test_delete_while_iterating(void **state)
{
	struct kb_list head, *pos, *tmp;
	struct item it[6];
	int got[8];

	kb_list_init(&head);
	for (int i = 0; i < 6; i++) {
		it[i].value = i;
		kb_list_add_tail(&head, &it[i].node);
	}
	kb_list_for_each_safe(pos, tmp, &head)
	{
		if (kb_list_entry(pos, struct item, node)->value % 2)
			kb_list_del(pos);
	}
	assert_int_equal(collect(&head, got, 8), 3);
	assert_int_equal(got[0], 0);
	assert_int_equal(got[1], 2);
	assert_int_equal(got[2], 4);
	/* A deleted node points at itself, so deleting it again is harmless. */
	assert_ptr_equal(it[1].node.next, &it[1].node);
	kb_list_del(&it[1].node);
	assert_int_equal(collect(&head, got, 8), 3);

	kb_list_for_each_safe(pos, tmp, &head) kb_list_del(pos);
	assert_true(kb_list_empty(&head));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order),
	    cmocka_unit_test(test_delete_while_iterating),
	};

	return cmocka_run_group_tests_name("lib_list", tests, NULL, NULL);
}
