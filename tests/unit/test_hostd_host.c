/*
 * Tests for hostagent/vim_host.h's pure and file helpers: hd_vmknic_plan, the difference
 * between vmkernel's adapter and the one a ChangeVmknic wants (a new adapter is one add;
 * an existing one gets only the requests for what differs: address, MTU, tags removed and
 * added, tags compared without case; empty fields keep; a move to another portgroup or
 * netstack, a tag named twice and too many tags are refused with a reason; a plan that does
 * not fit is -ENOSPC), and the standalone maintenance flag file (absent, set, cleared).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "hostagent/vim_host.h"

/* vmkernel's vmk1: 198.18.0.21/24 gateway 198.18.0.1, MTU 1500, tags Management, VMotion. */
static char *cur_tags[] = {"Management", "VMotion"};

static Keel__Vmk__VmknicInfo make_cur(void)
{
	Keel__Vmk__VmknicInfo c = KEEL__VMK__VMKNIC_INFO__INIT;

	c.name = "vmk1";
	c.portgroup = "Mgmt";
	c.netstack = "defaultTcpipStack";
	c.ipv4 = "198.18.0.21";
	c.prefix = 24;
	c.gateway = "198.18.0.1";
	c.mtu = 1500;
	c.n_tags = 2;
	c.tags = cur_tags;
	return c;
}

static Keel__Vim__Vmknic make_want(char **tags, size_t n)
{
	Keel__Vim__Vmknic w = KEEL__VIM__VMKNIC__INIT;

	w.name = "vmk1";
	w.ipv4 = "";
	w.n_tags = n;
	w.tags = tags;
	return w;
}

static void test_new_adapter_is_one_add(void **state)
{
	char *tags[] = {"Management"};
	Keel__Vim__Vmknic w = make_want(tags, 1);
	struct hd_vmknic_step s[HD_VMKNIC_STEPS_MAX];
	char why[128] = "";
	size_t n = 99;

	(void)state;
	w.portgroup = "Mgmt";
	w.ipv4 = "198.18.0.30/24";
	assert_int_equal(hd_vmknic_plan(NULL, &w, s, HD_VMKNIC_STEPS_MAX, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(s[0].kind, HD_VMKNIC_ADD);
}

static void test_same_adapter_needs_nothing(void **state)
{
	char *tags[] = {"vmotion", "MANAGEMENT"}; /* other order and case */
	Keel__Vmk__VmknicInfo c = make_cur();
	Keel__Vim__Vmknic w = make_want(tags, 2);
	struct hd_vmknic_step s[HD_VMKNIC_STEPS_MAX];
	char why[128] = "";
	size_t n = 99;

	(void)state;
	w.portgroup = "Mgmt";
	w.ipv4 = "198.18.0.21/24";
	w.mtu = 1500;
	assert_int_equal(hd_vmknic_plan(&c, &w, s, HD_VMKNIC_STEPS_MAX, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 0);
}

static void test_difference_in_order(void **state)
{
	char *tags[] = {"Management", "Provisioning", "vSAN"};
	Keel__Vmk__VmknicInfo c = make_cur();
	Keel__Vim__Vmknic w = make_want(tags, 3);
	struct hd_vmknic_step s[HD_VMKNIC_STEPS_MAX];
	char why[128] = "";
	size_t n = 0;

	(void)state;
	w.ipv4 = "198.18.0.22/24";
	w.mtu = 9000;
	assert_int_equal(hd_vmknic_plan(&c, &w, s, HD_VMKNIC_STEPS_MAX, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 5);
	assert_int_equal(s[0].kind, HD_VMKNIC_SET_IP);
	assert_int_equal(s[1].kind, HD_VMKNIC_SET_MTU);
	assert_int_equal(s[2].kind, HD_VMKNIC_TAG_REMOVE);
	assert_string_equal(s[2].tag, "VMotion");
	assert_int_equal(s[3].kind, HD_VMKNIC_TAG_ADD);
	assert_string_equal(s[3].tag, "Provisioning");
	assert_int_equal(s[4].kind, HD_VMKNIC_TAG_ADD);
	assert_string_equal(s[4].tag, "vSAN");
}

static void test_prefix_change_is_an_address_change(void **state)
{
	Keel__Vmk__VmknicInfo c = make_cur();
	Keel__Vim__Vmknic w = make_want(cur_tags, 2);
	struct hd_vmknic_step s[HD_VMKNIC_STEPS_MAX];
	char why[128] = "";
	size_t n = 0;

	(void)state;
	w.ipv4 = "198.18.0.21/16";
	assert_int_equal(hd_vmknic_plan(&c, &w, s, HD_VMKNIC_STEPS_MAX, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(s[0].kind, HD_VMKNIC_SET_IP);
}

static void test_no_tags_removes_all(void **state)
{
	Keel__Vmk__VmknicInfo c = make_cur();
	Keel__Vim__Vmknic w = make_want(NULL, 0);
	struct hd_vmknic_step s[HD_VMKNIC_STEPS_MAX];
	char why[128] = "";
	size_t n = 0;

	(void)state;
	assert_int_equal(hd_vmknic_plan(&c, &w, s, HD_VMKNIC_STEPS_MAX, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 2);
	assert_int_equal(s[0].kind, HD_VMKNIC_TAG_REMOVE);
	assert_int_equal(s[1].kind, HD_VMKNIC_TAG_REMOVE);
}

static void test_move_is_refused(void **state)
{
	Keel__Vmk__VmknicInfo c = make_cur();
	Keel__Vim__Vmknic w = make_want(cur_tags, 2);
	struct hd_vmknic_step s[HD_VMKNIC_STEPS_MAX];
	char why[256] = "";
	size_t n = 0;

	(void)state;
	w.portgroup = "Other";
	assert_int_equal(hd_vmknic_plan(&c, &w, s, HD_VMKNIC_STEPS_MAX, &n, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "portgroup Mgmt"));
	assert_non_null(strstr(why, "remove it and add it again"));
	w.portgroup = "";
	w.netstack = "vmotion";
	why[0] = '\0';
	assert_int_equal(hd_vmknic_plan(&c, &w, s, HD_VMKNIC_STEPS_MAX, &n, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "netstack defaultTcpipStack"));
}

static void test_bad_tag_lists(void **state)
{
	char *twice[] = {"VMotion", "vmotion"};
	char *many[HD_HOST_TAGS_MAX + 1];
	Keel__Vmk__VmknicInfo c = make_cur();
	Keel__Vim__Vmknic w = make_want(twice, 2);
	struct hd_vmknic_step s[HD_VMKNIC_STEPS_MAX];
	char why[256] = "";
	size_t n = 0;

	(void)state;
	assert_int_equal(hd_vmknic_plan(&c, &w, s, HD_VMKNIC_STEPS_MAX, &n, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "named twice"));
	for (size_t i = 0; i <= HD_HOST_TAGS_MAX; i++)
		many[i] = "Management";
	w = make_want(many, HD_HOST_TAGS_MAX + 1);
	assert_int_equal(hd_vmknic_plan(NULL, &w, s, HD_VMKNIC_STEPS_MAX, &n, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "at most"));
}

static void test_plan_that_does_not_fit(void **state)
{
	char *tags[] = {"Provisioning"};
	Keel__Vmk__VmknicInfo c = make_cur();
	Keel__Vim__Vmknic w = make_want(tags, 1);
	struct hd_vmknic_step s[2];
	char why[128] = "";
	size_t n = 0;

	(void)state;
	w.mtu = 9000; /* set-mtu, 2 removes, 1 add: 4 steps */
	assert_int_equal(hd_vmknic_plan(&c, &w, s, 2, &n, why, sizeof(why)), -ENOSPC);
	assert_int_equal(hd_vmknic_plan(NULL, &w, s, 0, &n, why, sizeof(why)), -ENOSPC);
}

static void test_maintenance_file(void **state)
{
	char dir[] = "/tmp/test_hostd_host.XXXXXX", path[64];
	struct kb_errmsg e;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/maintenance", dir);
	assert_false(hd_host_maintenance_get(dir));
	assert_int_equal(hd_host_maintenance_set(dir, true, &e), 0);
	assert_true(hd_host_maintenance_get(dir));
	assert_int_equal(hd_host_maintenance_set(dir, false, &e), 0);
	assert_false(hd_host_maintenance_get(dir));
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
	rmdir(dir);
	assert_int_not_equal(hd_host_maintenance_set("/nonexistent/dir", true, &e), 0);
	assert_true(e.msg[0] != '\0');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_new_adapter_is_one_add),
	    cmocka_unit_test(test_same_adapter_needs_nothing),
	    cmocka_unit_test(test_difference_in_order),
	    cmocka_unit_test(test_prefix_change_is_an_address_change),
	    cmocka_unit_test(test_no_tags_removes_all),
	    cmocka_unit_test(test_move_is_refused),
	    cmocka_unit_test(test_bad_tag_lists),
	    cmocka_unit_test(test_plan_that_does_not_fit),
	    cmocka_unit_test(test_maintenance_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
