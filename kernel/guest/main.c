/*
 * kguest's main program, entered at CPL3 on vCPU 0 from start.S with the boot info
 * (abi.h). It prints the "up" line first (boot benchmarks time power-on to that line),
 * then parses the command line, finds the agent, the working memory and the virtio
 * devices, and runs the poll loop forever: every module checks its own TSC deadline and
 * does a bounded slice of work, so no device interrupt is ever needed. With idle_ms the
 * loop sleeps on the APIC timer between deadlines instead of spinning. A bad boot info
 * block is reported and the VM powered off.
 */
#include "kguest.h"

#define MAX_PCI 32

#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_ID_NET 0x1041
#define VIRTIO_ID_BLK 0x1042

#define IDLE_MIN_US 100 /* a sleep costs ~70 µs of emulated CPL0 work on PVM */

uint64_t kg_tsc_khz = 1000000;

void kg_main(const struct kguest_boot_info *bi, uint64_t cpu);

static char cmdline[KGUEST_CMDLINE_MAX];

/* With idle_ms set, sleeps until the first module deadline (at most idle_ms, capped at
 * one second) instead of spinning. Network receive has no deadline: idle_ms bounds the
 * latency it adds there. */
static void idle(uint64_t now)
{
	uint64_t until = now + kg_ms_to_tsc(KG_MIN(kg_cfg.idle_ms, 1000));

	until = KG_MIN(until, kg_workload_next());
	until = KG_MIN(until, kg_mem_next(now));
	until = KG_MIN(until, kg_diskseq_next(now));
	until = KG_MIN(until, kg_cmd_next());
	now = kg_rdtsc();
	if (until <= now || (until - now) * 1000 / kg_tsc_khz < IDLE_MIN_US)
		return;
	uint64_t ns = KG_MIN((until - now) * 1000000 / kg_tsc_khz, 4000000000ull);
	kg_sleep_ns((uint32_t)ns);
}

static void probe_devices(void)
{
	struct kg_pci_dev devs[MAX_PCI];
	int n = kg_pci_scan(devs, MAX_PCI);

	for (int i = 0; i < n; i++) {
		const struct kg_pci_dev *d = &devs[i];
		int rc = 0;
		if (d->vendor != VIRTIO_VENDOR)
			continue;
		if (d->device == VIRTIO_ID_BLK && !kg_blk_present())
			rc = kg_blk_probe(d);
		else if (d->device == VIRTIO_ID_NET && !kg_net_present())
			rc = kg_net_probe(d);
		if (rc)
			kg_printf("kguest: virtio %02x:%02x.%x (%04x) failed: %d\n", d->bus, d->dev,
				  d->fn, d->device, rc);
	}
}

void kg_main(const struct kguest_boot_info *bi, uint64_t cpu)
{
	uint64_t boot = kg_rdtsc();

	kg_trap_init();
	if (bi->magic != KGUEST_BOOT_MAGIC || bi->version != KGUEST_BOOT_VERSION) {
		kg_printf("kguest: bad boot info (magic %lx version %u)\n", bi->magic, bi->version);
		kg_agent_init();
		kg_agent_power(KGUEST_POWER_OFF);
	}
	if (bi->tsc_khz)
		kg_tsc_khz = bi->tsc_khz;
	kg_printf("kguest: up, mem=%luM vcpus=%u\n", (bi->mem_low + bi->mem_high) >> 20,
		  bi->nr_vcpus);

	size_t len = KG_MIN((size_t)bi->cmdline_len, sizeof(cmdline) - 1);
	memcpy(cmdline, bi->cmdline, len);
	cmdline[len] = '\0';
	kg_cmdline_parse(cmdline);
	bool agent = kg_agent_init();
	kg_printf("kguest: tsc_khz=%lu agent=%s cmdline: %s\n", kg_tsc_khz, agent ? "yes" : "no",
		  cmdline);

	kg_mem_init(bi);
	probe_devices();
	if (kg_cfg.ip)
		kg_ip_config_changed();
	kg_workload_init(boot);
	kg_printf("kguest: ready in %lu ms\n", kg_tsc_to_ms(kg_rdtsc() - boot));
	kg_agent_send("ready");

	for (;;) {
		uint64_t now = kg_rdtsc();
		kg_workload_poll(now);
		kg_mem_poll(now);
		kg_diskseq_poll(now);
		kg_net_poll();
		kg_cmd_poll(now);
		if (kg_cfg.idle_ms)
			idle(now);
		else
			kg_pause();
	}
}
