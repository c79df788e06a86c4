/*
 * Tests for kernel/res's pure parts: ESXi shares text, settings checks, the conversion
 * from and to Keel__Vmk__Resources, the mapping of settings to cgroup values (cpu.shares,
 * cpu.weight, CFS quota, memory cap), the host reserve and admission control, including
 * the edges at exactly full and the refusal messages.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "kernel/res/res.h"
#include "vmk.pb-c.h"

static void test_shares_parse(void **state)
{
	enum vmk_res_shares_level level = VMK_RES_SHARES_CUSTOM;
	struct kb_errmsg err = {{0}};
	uint32_t shares = 99;

	assert_int_equal(vmk_res_shares_parse(NULL, &level, &shares, NULL), 0);
	assert_int_equal(level, VMK_RES_SHARES_NORMAL);
	assert_int_equal(shares, 0);
	assert_int_equal(vmk_res_shares_parse("", &level, &shares, NULL), 0);
	assert_int_equal(level, VMK_RES_SHARES_NORMAL);
	assert_int_equal(vmk_res_shares_parse("Low", &level, &shares, NULL), 0);
	assert_int_equal(level, VMK_RES_SHARES_LOW);
	assert_int_equal(vmk_res_shares_parse("HIGH", &level, &shares, NULL), 0);
	assert_int_equal(level, VMK_RES_SHARES_HIGH);
	assert_int_equal(vmk_res_shares_parse("normal", &level, &shares, NULL), 0);
	assert_int_equal(level, VMK_RES_SHARES_NORMAL);
	assert_int_equal(vmk_res_shares_parse("1", &level, &shares, NULL), 0);
	assert_int_equal(level, VMK_RES_SHARES_CUSTOM);
	assert_int_equal(shares, 1);
	assert_int_equal(vmk_res_shares_parse("1000000", &level, &shares, NULL), 0);
	assert_int_equal(shares, 1000000);

	assert_int_equal(vmk_res_shares_parse("0", &level, &shares, NULL), KB_ECONFIG);
	assert_int_equal(vmk_res_shares_parse("1000001", &level, &shares, NULL), KB_ECONFIG);
	assert_int_equal(vmk_res_shares_parse("-5", &level, &shares, NULL), KB_ECONFIG);
	assert_int_equal(vmk_res_shares_parse("12abc", &level, &shares, NULL), KB_ECONFIG);
	assert_int_equal(vmk_res_shares_parse(" 5", &level, &shares, NULL), KB_ECONFIG);
	assert_int_equal(vmk_res_shares_parse("99999999999999999999999", &level, &shares, NULL),
			 KB_ECONFIG);
	assert_int_equal(vmk_res_shares_parse("medium", &level, &shares, &err), KB_ECONFIG);
	assert_string_equal(
	    err.msg, "CPU shares \"medium\" must be low, normal, high or a number 1..1000000");
}

static void test_shares_format_and_count(void **state)
{
	struct vmk_res_settings s = {.shares_level = VMK_RES_SHARES_CUSTOM, .shares = 2500};
	char buf[16];

	assert_string_equal(vmk_res_shares_format(&s, buf, sizeof(buf)), "2500");
	assert_int_equal(vmk_res_shares(&s, 8), 2500);
	s.shares_level = VMK_RES_SHARES_HIGH;
	assert_string_equal(vmk_res_shares_format(&s, buf, sizeof(buf)), "high");
	assert_int_equal(vmk_res_shares(&s, 3), 6000);
	assert_int_equal(vmk_res_shares(&s, 1000), VMK_RES_SHARES_MAX);
	s.shares_level = VMK_RES_SHARES_LOW;
	assert_string_equal(vmk_res_shares_format(&s, buf, sizeof(buf)), "low");
	assert_int_equal(vmk_res_shares(&s, 2), 1000);
	s.shares_level = VMK_RES_SHARES_NORMAL;
	assert_string_equal(vmk_res_shares_format(&s, buf, sizeof(buf)), "normal");
	assert_int_equal(vmk_res_shares(&s, 4), 4000);
	assert_int_equal(vmk_res_shares(&s, 0), 1000);
}

static void test_v1_shares_mapping(void **state)
{
	assert_int_equal(vmk_res_v1_cpu_shares(1000), 1024);
	assert_int_equal(vmk_res_v1_cpu_shares(500), 512);
	assert_int_equal(vmk_res_v1_cpu_shares(2000), 2048);
	assert_int_equal(vmk_res_v1_cpu_shares(4000), 4096);
	assert_int_equal(vmk_res_v1_cpu_shares(3), 3);
	assert_int_equal(vmk_res_v1_cpu_shares(1), 2);
	assert_int_equal(vmk_res_v1_cpu_shares(255999), 262143);
	assert_int_equal(vmk_res_v1_cpu_shares(256000), 262144);
	assert_int_equal(vmk_res_v1_cpu_shares(1000000), 262144);
}

static void test_v2_weight_mapping(void **state)
{
	assert_int_equal(vmk_res_v2_cpu_weight(1000), 100);
	assert_int_equal(vmk_res_v2_cpu_weight(500), 50);
	assert_int_equal(vmk_res_v2_cpu_weight(2000), 200);
	assert_int_equal(vmk_res_v2_cpu_weight(8000), 800);
	assert_int_equal(vmk_res_v2_cpu_weight(15), 2);
	assert_int_equal(vmk_res_v2_cpu_weight(14), 1);
	assert_int_equal(vmk_res_v2_cpu_weight(4), 1);
	assert_int_equal(vmk_res_v2_cpu_weight(1), 1);
	assert_int_equal(vmk_res_v2_cpu_weight(99994), 9999);
	assert_int_equal(vmk_res_v2_cpu_weight(100000), 10000);
	assert_int_equal(vmk_res_v2_cpu_weight(1000000), 10000);
}

static void test_cfs_quota(void **state)
{
	/* 1000 MHz of a 2596 MHz CPU: 38.52% of each 100 ms period, rounded down. */
	assert_int_equal(vmk_res_cfs_quota_us(1000, 2596, 1, 100000), 38520);
	assert_int_equal(vmk_res_cfs_quota_us(1000, 2596, 4, 100000), 38520);
	/* One and a half CPUs' worth. */
	assert_int_equal(vmk_res_cfs_quota_us(3894, 2596, 2, 100000), 150000);
	assert_int_equal(vmk_res_cfs_quota_us(2596, 2596, 2, 100000), 100000);
	assert_int_equal(vmk_res_cfs_quota_us(5000, 2596, 2, 100000), 192604);
	assert_int_equal(vmk_res_cfs_quota_us(1000, 2000, 4, 50000), 25000);
	/* A limit the vCPUs cannot reach never binds: no quota. */
	assert_int_equal(vmk_res_cfs_quota_us(5192, 2596, 2, 100000), -1);
	assert_int_equal(vmk_res_cfs_quota_us(2596, 2596, 1, 100000), -1);
	assert_int_equal(vmk_res_cfs_quota_us(2596, 2596, 0, 100000), -1);
	/* Tiny limits get the kernel's minimum quota. */
	assert_int_equal(vmk_res_cfs_quota_us(1, 2596, 1, 100000), VMK_RES_QUOTA_MIN_US);
	assert_int_equal(vmk_res_cfs_quota_us(0, 2596, 1, 100000), -1);
	assert_int_equal(vmk_res_cfs_quota_us(1000, 0, 1, 100000), -1);
}

static void test_mem_max(void **state)
{
	/* Limit 0: the memory size, plus 32 MiB and 1/64 for the vmx. */
	assert_int_equal(vmk_res_mem_max_bytes(0, 1024, 32), 1072ull << 20);
	assert_int_equal(vmk_res_mem_max_bytes(0, 1024, 32), 1124073472ull);
	assert_int_equal(vmk_res_mem_max_bytes(512, 1024, 32), 552ull << 20);
	assert_int_equal(vmk_res_mem_max_bytes(4096, 1024, 32), 1072ull << 20);
	assert_int_equal(vmk_res_mem_max_bytes(100, 1024, 0), 102ull << 20);
	assert_int_equal(vmk_res_mem_max_bytes(0, 1, 0), 2ull << 20);
}

static void test_settings_check(void **state)
{
	struct vmk_res_settings s = {0};
	struct kb_errmsg err = {{0}};

	assert_int_equal(vmk_res_settings_check(&s, 2048, 2, 2596, &err), 0);
	assert_int_equal(vmk_res_settings_check(&s, 2048, 0, 2596, &err), KB_ECONFIG);
	assert_string_equal(err.msg, "a VM needs at least one vCPU");
	assert_int_equal(vmk_res_settings_check(&s, 0, 1, 2596, &err), KB_ECONFIG);

	s.shares_level = (enum vmk_res_shares_level)7;
	assert_int_equal(vmk_res_settings_check(&s, 2048, 2, 2596, &err), KB_ECONFIG);
	assert_string_equal(err.msg, "unknown CPU shares level 7");
	s.shares_level = VMK_RES_SHARES_CUSTOM;
	s.shares = 0;
	assert_int_equal(vmk_res_settings_check(&s, 2048, 2, 2596, &err), KB_ECONFIG);
	assert_string_equal(err.msg, "CPU shares 0 out of range 1..1000000");
	s.shares = 1000001;
	assert_int_equal(vmk_res_settings_check(&s, 2048, 2, 2596, NULL), KB_ECONFIG);
	s.shares = 1000000;
	assert_int_equal(vmk_res_settings_check(&s, 2048, 2, 2596, NULL), 0);

	s.cpu_reservation_mhz = 1000;
	s.cpu_limit_mhz = 500;
	assert_int_equal(vmk_res_settings_check(&s, 2048, 2, 2596, &err), KB_ECONFIG);
	assert_string_equal(err.msg, "CPU limit 500 MHz is below the CPU reservation 1000 MHz");
	s.cpu_limit_mhz = 1000;
	assert_int_equal(vmk_res_settings_check(&s, 2048, 2, 2596, &err), 0);
	s.cpu_limit_mhz = 0;
	assert_int_equal(vmk_res_settings_check(&s, 2048, 2, 2596, &err), 0);

	s.cpu_reservation_mhz = 5193;
	assert_int_equal(vmk_res_settings_check(&s, 2048, 2, 2596, &err), KB_ECONFIG);
	assert_string_equal(err.msg,
			    "CPU reservation 5193 MHz exceeds what 2 vCPUs can use (5192 MHz at "
			    "2596 MHz each)");
	s.cpu_reservation_mhz = 2597;
	assert_int_equal(vmk_res_settings_check(&s, 2048, 1, 2596, &err), KB_ECONFIG);
	assert_string_equal(err.msg,
			    "CPU reservation 2597 MHz exceeds what 1 vCPU can use (2596 MHz at "
			    "2596 MHz each)");
	assert_int_equal(vmk_res_settings_check(&s, 2048, 1, 0, &err), 0);
	s.cpu_reservation_mhz = 5192;
	assert_int_equal(vmk_res_settings_check(&s, 2048, 2, 2596, &err), 0);

	s.mem_reservation_mib = 2049;
	assert_int_equal(vmk_res_settings_check(&s, 2048, 2, 2596, &err), KB_ECONFIG);
	assert_string_equal(err.msg,
			    "memory reservation 2049 MiB exceeds the VM's memory size 2048 MiB");
	s.mem_reservation_mib = 2048;
	assert_int_equal(vmk_res_settings_check(&s, 2048, 2, 2596, &err), 0);
	s.mem_limit_mib = 1000;
	assert_int_equal(vmk_res_settings_check(&s, 2048, 2, 2596, &err), KB_ECONFIG);
	assert_string_equal(err.msg,
			    "memory limit 1000 MiB is below the memory reservation 2048 MiB");
	s.mem_limit_mib = 4096; /* above the memory size: the memory size */
	assert_int_equal(vmk_res_settings_check(&s, 2048, 2, 2596, &err), 0);
}

static void test_settings_pb(void **state)
{
	Keel__Vmk__Resources pb = KEEL__VMK__RESOURCES__INIT;
	Keel__Vmk__Resources back = KEEL__VMK__RESOURCES__INIT;
	struct vmk_res_settings s, keep;
	struct kb_errmsg err = {{0}};
	char buf[16];

	memset(&s, 0xff, sizeof(s));
	assert_int_equal(vmk_res_settings_from_pb(NULL, &s, &err), 0);
	assert_int_equal(s.shares_level, VMK_RES_SHARES_NORMAL);
	assert_int_equal(s.cpu_limit_mhz | s.cpu_reservation_mhz | s.mem_limit_mib, 0);
	assert_int_equal(s.mem_reservation_mib, 0);

	/* The default string of a message read off the wire is "". */
	assert_int_equal(vmk_res_settings_from_pb(&pb, &s, &err), 0);
	assert_int_equal(s.shares_level, VMK_RES_SHARES_NORMAL);

	pb.cpu_shares = "high";
	pb.cpu_reservation_mhz = 500;
	pb.cpu_limit_mhz = 2000;
	pb.mem_reservation_mib = 256;
	pb.mem_limit_mib = 1024;
	assert_int_equal(vmk_res_settings_from_pb(&pb, &s, &err), 0);
	assert_int_equal(s.shares_level, VMK_RES_SHARES_HIGH);
	assert_int_equal(s.cpu_reservation_mhz, 500);
	assert_int_equal(s.cpu_limit_mhz, 2000);
	assert_int_equal(s.mem_reservation_mib, 256);
	assert_int_equal(s.mem_limit_mib, 1024);

	vmk_res_settings_to_pb(&s, &back, buf, sizeof(buf));
	assert_string_equal(back.cpu_shares, "high");
	assert_int_equal(back.cpu_reservation_mhz, 500);
	assert_int_equal(back.cpu_limit_mhz, 2000);
	assert_int_equal(back.mem_reservation_mib, 256);
	assert_int_equal(back.mem_limit_mib, 1024);

	pb.cpu_shares = "4321";
	assert_int_equal(vmk_res_settings_from_pb(&pb, &s, &err), 0);
	assert_int_equal(s.shares_level, VMK_RES_SHARES_CUSTOM);
	assert_int_equal(s.shares, 4321);
	vmk_res_settings_to_pb(&s, &back, buf, sizeof(buf));
	assert_string_equal(back.cpu_shares, "4321");

	/* A bad shares text changes nothing. */
	keep = s;
	pb.cpu_shares = "lots";
	assert_int_equal(vmk_res_settings_from_pb(&pb, &s, &err), KB_ECONFIG);
	assert_memory_equal(&s, &keep, sizeof(s));
	assert_non_null(strstr(err.msg, "\"lots\""));
}

static void test_reserve(void **state)
{
	struct vmk_res_reserve r = VMK_RES_RESERVE_DEFAULT;
	struct vmk_res_capacity cap = {
	    .cpus = 2, .cpu_mhz = 2596, .cpu_total_mhz = 5192, .mem_total_mib = 8192};

	vmk_res_capacity_apply_reserve(&cap, &r);
	assert_int_equal(cap.cpu_host_reserve_mhz, 520); /* 10% of 5192, rounded up */
	assert_int_equal(cap.cpu_reservable_mhz, 4672);
	assert_int_equal(cap.mem_host_reserve_mib, 256 + 410); /* 256 MiB + 5%, rounded up */
	assert_int_equal(cap.mem_reservable_mib, 7526);

	vmk_res_capacity_apply_reserve(&cap, NULL);
	assert_int_equal(cap.cpu_reservable_mhz, 4672);
	assert_int_equal(cap.mem_reservable_mib, 7526);

	r = (struct vmk_res_reserve){.cpu_mhz = 1000};
	vmk_res_capacity_apply_reserve(&cap, &r);
	assert_int_equal(cap.cpu_reservable_mhz, 4192);
	assert_int_equal(cap.mem_reservable_mib, 8192);
	assert_int_equal(cap.mem_host_reserve_mib, 0);

	r = (struct vmk_res_reserve){.cpu_percent = 150, .mem_mib = 10000};
	vmk_res_capacity_apply_reserve(&cap, &r);
	assert_int_equal(cap.cpu_reservable_mhz, 0);
	assert_int_equal(cap.cpu_host_reserve_mhz, 5192);
	assert_int_equal(cap.mem_reservable_mib, 0);
	assert_int_equal(cap.mem_host_reserve_mib, 8192);
}

static void test_usage_mhz(void **state)
{
	struct vmk_res_capacity cap = {.cpus = 2, .cpu_mhz = 2596};

	assert_true(vmk_res_usage_mhz(&cap, 500000000, 1000000000) == 1298.0);
	assert_true(vmk_res_usage_mhz(&cap, 2000000000, 1000000000) == 5192.0);
	assert_true(vmk_res_usage_mhz(&cap, 5, 0) == 0.0);
}

static const struct vmk_res_capacity cap7680 = {
    .cpus = 2,
    .cpu_mhz = 2596,
    .cpu_total_mhz = 5192,
    .mem_total_mib = 8192,
    .cpu_reservable_mhz = 4672,
    .mem_reservable_mib = 7680,
};

static void test_admit_memory(void **state)
{
	struct vmk_res_totals used = {.mem_mib = 6144};
	struct vmk_res_settings vm = {.mem_reservation_mib = 2048};
	struct kb_errmsg err = {{0}};

	assert_int_equal(vmk_res_admit(&cap7680, &used, "web1", &vm, &err), KB_ESTATE);
	assert_string_equal(err.msg, "cannot power on web1: it reserves 2048 MiB of memory; 1536 "
				     "MiB of 7680 MiB remain unreserved");
	/* Exactly full fits; one MiB more does not. */
	vm.mem_reservation_mib = 1536;
	assert_int_equal(vmk_res_admit(&cap7680, &used, "web1", &vm, &err), 0);
	vm.mem_reservation_mib = 1537;
	assert_int_equal(vmk_res_admit(&cap7680, &used, "web1", &vm, NULL), KB_ESTATE);
	used.mem_mib = 0;
	vm.mem_reservation_mib = 7680;
	assert_int_equal(vmk_res_admit(&cap7680, &used, "web1", &vm, &err), 0);
	vm.mem_reservation_mib = 7681;
	assert_int_equal(vmk_res_admit(&cap7680, &used, "web1", &vm, &err), KB_ESTATE);
	assert_string_equal(err.msg, "cannot power on web1: it reserves 7681 MiB of memory; 7680 "
				     "MiB of 7680 MiB remain unreserved");
}

static void test_admit_cpu_and_both(void **state)
{
	struct vmk_res_totals used = {.cpu_mhz = 3472, .mem_mib = 7000};
	struct vmk_res_settings vm = {.cpu_reservation_mhz = 1200};
	struct kb_errmsg err = {{0}};

	assert_int_equal(vmk_res_admit(&cap7680, &used, "db", &vm, &err), 0);
	vm.cpu_reservation_mhz = 1201;
	assert_int_equal(vmk_res_admit(&cap7680, &used, "db", &vm, &err), KB_ESTATE);
	assert_string_equal(err.msg, "cannot power on db: it reserves 1201 MHz of CPU; 1200 MHz "
				     "of 4672 MHz remain unreserved");
	vm.mem_reservation_mib = 1024;
	assert_int_equal(vmk_res_admit(&cap7680, &used, NULL, &vm, &err), KB_ESTATE);
	assert_string_equal(err.msg,
			    "cannot power on the VM: it reserves 1024 MiB of memory; 680 MiB of "
			    "7680 MiB remain unreserved; and it reserves 1201 MHz of CPU; 1200 MHz "
			    "of 4672 MHz remain unreserved");
}

static void test_admit_overcommitted(void **state)
{
	/* Already over the reservable figure (the reserve grew since): nothing remains, but a
	 * VM without reservations still powers on. */
	struct vmk_res_totals used = {.cpu_mhz = 9999, .mem_mib = 9000};
	struct vmk_res_settings vm = {.cpu_limit_mhz = 100, .mem_limit_mib = 64};
	struct kb_errmsg err = {{0}};

	assert_int_equal(vmk_res_admit(&cap7680, &used, "idle", &vm, &err), 0);
	vm.mem_reservation_mib = 1;
	assert_int_equal(vmk_res_admit(&cap7680, &used, "small", &vm, &err), KB_ESTATE);
	assert_string_equal(err.msg, "cannot power on small: it reserves 1 MiB of memory; 0 MiB "
				     "of 7680 MiB remain unreserved");
}

static void test_totals_then_admit(void **state)
{
	const struct vmk_res_settings on[] = {
	    {.cpu_reservation_mhz = 1000, .mem_reservation_mib = 2048},
	    {.cpu_reservation_mhz = 672, .mem_reservation_mib = 1024},
	    {.mem_reservation_mib = 512},
	};
	struct vmk_res_settings next = {.cpu_reservation_mhz = 3000, .mem_reservation_mib = 4096};
	struct vmk_res_totals t = {0};
	unsigned i;

	for (i = 0; i < 3; i++)
		vmk_res_totals_add(&t, &on[i]);
	assert_int_equal(t.cpu_mhz, 1672);
	assert_int_equal(t.mem_mib, 3584);
	/* 1672 + 3000 = 4672 and 3584 + 4096 = 7680: full on both, still fits. */
	assert_int_equal(vmk_res_admit(&cap7680, &t, "last", &next, NULL), 0);
	vmk_res_totals_add(&t, &next);
	next = (struct vmk_res_settings){.cpu_reservation_mhz = 1};
	assert_int_equal(vmk_res_admit(&cap7680, &t, "one-more", &next, NULL), KB_ESTATE);
	next = (struct vmk_res_settings){.shares_level = VMK_RES_SHARES_HIGH};
	assert_int_equal(vmk_res_admit(&cap7680, &t, "unreserved", &next, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_shares_parse),
	    cmocka_unit_test(test_shares_format_and_count),
	    cmocka_unit_test(test_v1_shares_mapping),
	    cmocka_unit_test(test_v2_weight_mapping),
	    cmocka_unit_test(test_cfs_quota),
	    cmocka_unit_test(test_mem_max),
	    cmocka_unit_test(test_settings_check),
	    cmocka_unit_test(test_settings_pb),
	    cmocka_unit_test(test_reserve),
	    cmocka_unit_test(test_usage_mhz),
	    cmocka_unit_test(test_admit_memory),
	    cmocka_unit_test(test_admit_cpu_and_both),
	    cmocka_unit_test(test_admit_overcommitted),
	    cmocka_unit_test(test_totals_then_admit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
