/*
 * kguest internals shared by the files of kernel/guest (not a public header; the boot and
 * device ABI with the VMM is abi.h).
 *
 * kguest runs its setup at CPL0 only as long as it takes to load the IDT, set TSS.rsp0 and
 * iretq (start.S); everything else runs at CPL3 with IOPL=3 on vCPU 0, in one cooperative
 * poll loop (main.c). No device interrupts are used: each module has a _poll(now) function
 * that checks its deadline against the TSC and does a bounded amount of work (and a _next
 * for the optional idle sleep on the APIC timer). Port I/O and MMIO leave the CPU (an MMIO
 * access is a VM exit of 4-20 µs; port I/O from CPL3 is emulated by PVM or by start.S at
 * ~50 µs), so modules touch devices only when they have to.
 *
 * Errors: functions return 0 or a negative errno-style KG_E* code.
 */
#ifndef KGUEST_H
#define KGUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abi.h"

#define KG_PAGE_SIZE 4096ul
#define KG_MIB	     (1024ul * 1024)

#define KG_ENOENT    (-2)
#define KG_EIO	     (-5)
#define KG_EAGAIN    (-11)
#define KG_ENOMEM    (-12)
#define KG_ENODEV    (-19)
#define KG_EINVAL    (-22)
#define KG_ENOSPC    (-28)
#define KG_ENOTSUP   (-95)
#define KG_ETIMEDOUT (-110)

#define KG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define KG_MIN(a, b)	 ((a) < (b) ? (a) : (b))
#define KG_MAX(a, b)	 ((a) > (b) ? (a) : (b))
#define KG_PRINTF(f, a)	 __attribute__((format(printf, f, a)))

/* ---- CPU primitives ------------------------------------------------------------------ */

#define kg_barrier() __asm__ volatile("" ::: "memory")

/* A full fence: orders a store before a later load (x86 orders everything else). */
static inline void kg_mb(void)
{
	__asm__ volatile("mfence" ::: "memory");
}

static inline void kg_pause(void)
{
	__asm__ volatile("pause" ::: "memory");
}

static inline uint64_t kg_rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

/* Port I/O with the port in DX (the forms start.S can emulate): at CPL3 under PVM each is
 * one emulated instruction, so strings go through kg_outs8/kg_ins8 (one for the string). */
static inline void kg_out8(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "d"(port) : "memory");
}

static inline void kg_out32(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "d"(port) : "memory");
}

static inline uint8_t kg_in8(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "d"(port) : "memory");
	return v;
}

static inline uint32_t kg_in32(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "d"(port) : "memory");
	return v;
}

static inline void kg_outs8(uint16_t port, const void *buf, size_t len)
{
	__asm__ volatile("rep outsb" : "+S"(buf), "+c"(len) : "d"(port) : "memory");
}

static inline void kg_ins8(uint16_t port, void *buf, size_t len)
{
	__asm__ volatile("rep insb" : "+D"(buf), "+c"(len) : "d"(port) : "memory");
}

/* MMIO through plain movs of the exact width (each one is a VM exit the VMM decodes). */
static inline uint8_t kg_mmio_read8(uint64_t a)
{
	uint8_t v;

	__asm__ volatile("movb (%1), %0" : "=q"(v) : "r"(a) : "memory");
	return v;
}

static inline uint16_t kg_mmio_read16(uint64_t a)
{
	uint16_t v;

	__asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(a) : "memory");
	return v;
}

static inline uint32_t kg_mmio_read32(uint64_t a)
{
	uint32_t v;

	__asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(a) : "memory");
	return v;
}

static inline void kg_mmio_write8(uint64_t a, uint8_t v)
{
	__asm__ volatile("movb %0, (%1)" : : "q"(v), "r"(a) : "memory");
}

static inline void kg_mmio_write16(uint64_t a, uint16_t v)
{
	__asm__ volatile("movw %0, (%1)" : : "r"(v), "r"(a) : "memory");
}

static inline void kg_mmio_write32(uint64_t a, uint32_t v)
{
	__asm__ volatile("movl %0, (%1)" : : "r"(v), "r"(a) : "memory");
}

/* Sleeps about ns nanoseconds (>= 1000, < 2^32) on the APIC timer: the hlt traps to
 * start.S, which arms the timer and halts at CPL0. */
static inline void kg_sleep_ns(uint32_t ns)
{
	__asm__ volatile("hlt" : : "a"(ns) : "memory");
}

/* ---- time (main.c) -------------------------------------------------------------------- */

extern uint64_t kg_tsc_khz; /* TSC ticks per millisecond */

/* Saturates far below overflow, so any configured period is safe to add to a TSC value. */
static inline uint64_t kg_ms_to_tsc(uint64_t ms)
{
	uint64_t max = (UINT64_MAX / 4) / kg_tsc_khz;

	return (ms < max ? ms : max) * kg_tsc_khz;
}

static inline uint64_t kg_tsc_to_ms(uint64_t ticks)
{
	return ticks / kg_tsc_khz;
}

/* A periodic deadline. period 0 means off. A timer that fell more than a period behind
 * (the VM was paused or migrated) restarts from now instead of firing in a burst. */
struct kg_timer {
	uint64_t next;
	uint64_t period;
};

static inline void kg_timer_start(struct kg_timer *t, uint64_t period_ms, uint64_t now)
{
	t->period = kg_ms_to_tsc(period_ms);
	t->next = now + t->period;
}

static inline bool kg_timer_due(struct kg_timer *t, uint64_t now)
{
	if (!t->period || now < t->next)
		return false;
	t->next += t->period;
	if (t->next <= now)
		t->next = now + t->period;
	return true;
}

/* ---- lib.c ------------------------------------------------------------------------------ */

void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int kg_strcmp(const char *a, const char *b);
bool kg_starts_with(const char *s, const char *prefix);
/* vsnprintf subset: %d %i %u %x %p %s %c %%, flag 0, width, l/ll/z. Returns the length the
 * whole output would have; buf is always NUL-terminated when size > 0. */
int kg_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int kg_snprintf(char *buf, size_t size, const char *fmt, ...) KG_PRINTF(3, 4);
/* Decimal or 0x-hex, whole string. 0 or KG_EINVAL. */
int kg_parse_u64(const char *s, uint64_t *out);
/* "A.B.C.D" to a host-order address. 0 or KG_EINVAL. */
int kg_parse_ip(const char *s, uint32_t *out);
/* FNV-1a over 64-bit little-endian words, continuing from h (start with KG_FNV_INIT). */
#define KG_FNV_INIT 0xcbf29ce484222325ull
uint64_t kg_fnv1a_words(uint64_t h, const uint64_t *w, size_t nwords);

/* ---- console.c: COM1 ------------------------------------------------------------------ */

void kg_console_write(const char *s, size_t len);
/* Formats one message (up to 256 bytes) and writes it to COM1. Any CPL. */
void kg_printf(const char *fmt, ...) KG_PRINTF(1, 2);

/* ---- agent.c: the agent channel ----------------------------------------------------------- */

/* Probes the device; false when absent (then every other call is a no-op). */
bool kg_agent_init(void);
bool kg_agent_present(void);
void kg_agent_heartbeat(uint32_t seq);
/* Sends one line (a '\n' is added; longer lines are cut to KGUEST_AGENT_MSG_MAX). */
void kg_agent_send(const char *line);
void kg_agent_printf(const char *fmt, ...) KG_PRINTF(1, 2);
/* Reads pending bytes; returns the length of a complete line copied to buf (without the
 * '\n', NUL-terminated), or 0 when no full line has arrived yet. */
size_t kg_agent_poll_line(char *buf, size_t size);
/* Asks the VMM to power off or reset and waits for it. Any CPL. */
void kg_agent_power(uint8_t req) __attribute__((noreturn));

/* ---- trap.c: exceptions ------------------------------------------------------------------- */

/* Fills the IDT gates for vectors 0-31 (the IDT itself was loaded by start.S). */
void kg_trap_init(void);

/* ---- cmdline.c: configuration -------------------------------------------------------------- */

struct kg_config {
	uint64_t counter_ms;	/* console counter period, 0 = off */
	uint64_t hb_ms;		/* heartbeat period, 0 = off */
	uint64_t dirty_mib_s;	/* dirty rate */
	uint64_t dirty_ws_mib;	/* dirty working set */
	uint64_t fill_mib;	/* memory filled once */
	uint64_t disk_seq;	/* 1 = run the disk sequence */
	uint64_t disk_ms;	/* disk record period */
	uint64_t disk_flush;	/* 1 = flush after each header update */
	uint64_t exit_after_ms; /* power off after this long, 0 = never */
	uint64_t agent_ms;	/* agent in-port poll period */
	uint64_t idle_ms;	/* sleep at most this long when idle, 0 = always poll */
	uint32_t ip;		/* host order, 0 = network off */
	uint32_t netmask;
};

extern struct kg_config kg_cfg;

/* Parses "key=value key=value"; unknown keys are reported on the console and skipped. */
void kg_cmdline_parse(const char *cmdline);
/* Sets one key; with apply the owning module reacts at once (run-time "set").
 * 0, KG_ENOENT for an unknown key, KG_EINVAL for a bad value. */
int kg_config_set(const char *key, const char *value, bool apply);
/* Formats a key's current value. 0 or KG_ENOENT. */
int kg_config_get(const char *key, char *buf, size_t size);

/* ---- pci.c: bus 0 through the type-1 config ports ----------------------------------------- */

struct kg_pci_dev {
	uint8_t bus, dev, fn;
	uint16_t vendor, device;
};

uint32_t kg_pci_read32(const struct kg_pci_dev *d, uint8_t off);
void kg_pci_write32(const struct kg_pci_dev *d, uint8_t off, uint32_t v);
/* The address of a memory BAR as the VMM assigned it; 0 when it is I/O or unassigned. */
uint64_t kg_pci_bar(const struct kg_pci_dev *d, int bar);
/* Turns on memory-space decoding and bus mastering. */
void kg_pci_enable(const struct kg_pci_dev *d);
/* Fills devs with the functions on bus 0; returns how many. */
int kg_pci_scan(struct kg_pci_dev *devs, int max);

/* ---- virtio.c / vq.c: virtio-pci modern transport and split virtqueues ---------------------- */

#define KG_VQ_MAX 64

struct kg_vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

#define KG_VQ_DESC_F_NEXT  1
#define KG_VQ_DESC_F_WRITE 2

/* One split virtqueue in guest RAM: rings first (device-visible), driver state after. */
struct kg_vq {
	struct kg_vq_desc desc[KG_VQ_MAX];
	struct {
		uint16_t flags;
		uint16_t idx;
		uint16_t ring[KG_VQ_MAX];
		uint16_t used_event;
	} avail __attribute__((aligned(64)));
	struct {
		uint16_t flags;
		uint16_t idx;
		struct {
			uint32_t id;
			uint32_t len;
		} ring[KG_VQ_MAX];
		uint16_t avail_event;
	} used __attribute__((aligned(64)));
	/* driver state */
	uint16_t size;
	uint16_t index;
	uint16_t free_head;
	uint16_t nr_free;
	uint16_t avail_idx;
	uint16_t last_used;
	uint64_t notify_addr;
	uint64_t cookie[KG_VQ_MAX]; /* per chain head, given back by kg_vq_pop */
} __attribute__((aligned(4096)));

struct kg_vq_buf {
	void *addr;
	uint32_t len;
	bool device_writes;
};

void kg_vq_init(struct kg_vq *vq, uint16_t index, uint16_t size, uint64_t notify_addr);
/* Adds one chain (bufs in order: device-readable first, then device-writable) to the avail
 * ring without notifying. 0 or KG_ENOSPC. */
int kg_vq_add(struct kg_vq *vq, const struct kg_vq_buf *bufs, int n, uint64_t cookie);
/* Notifies the device unless it asked not to be. */
void kg_vq_kick(struct kg_vq *vq);
/* Takes one completed chain: true with its cookie and the bytes the device wrote. */
bool kg_vq_pop(struct kg_vq *vq, uint64_t *cookie, uint32_t *len);

struct kg_virtio {
	struct kg_pci_dev pci;
	uint64_t common;      /* common configuration */
	uint64_t notify;      /* notification area base */
	uint32_t notify_mult; /* notify_off_multiplier */
	uint64_t isr;
	uint64_t device;   /* device-specific configuration */
	uint64_t features; /* negotiated */
};

#define KG_VIRTIO_F_VERSION_1 (1ull << 32)

/* Finds the capabilities, enables the function, resets the device and negotiates
 * VERSION_1 plus whichever of `want` the device offers. 0, KG_ENODEV, KG_ENOTSUP or KG_EIO. */
int kg_virtio_init(struct kg_virtio *vd, const struct kg_pci_dev *pci, uint64_t want);
/* Sets up queue `index` with at most KG_VQ_MAX entries. 0 or KG_ENODEV. */
int kg_virtio_queue(struct kg_virtio *vd, uint16_t index, struct kg_vq *vq);
void kg_virtio_driver_ok(struct kg_virtio *vd);
void kg_virtio_failed(struct kg_virtio *vd);
uint8_t kg_virtio_cfg8(struct kg_virtio *vd, uint32_t off);
uint32_t kg_virtio_cfg32(struct kg_virtio *vd, uint32_t off);
uint64_t kg_virtio_cfg64(struct kg_virtio *vd, uint32_t off);

/* ---- blk.c: virtio-blk --------------------------------------------------------------------- */

#define KG_SECTOR 512

bool kg_blk_present(void);
uint64_t kg_blk_capacity(void); /* sectors */
int kg_blk_probe(const struct kg_pci_dev *pci);
/* Synchronous I/O of n sectors; buf stays owned by the caller. 0, KG_EIO, KG_ETIMEDOUT. */
int kg_blk_read(uint64_t sector, void *buf, uint32_t n);
int kg_blk_write(uint64_t sector, const void *buf, uint32_t n);
/* 0, or KG_ENOTSUP when the device has no flush. */
int kg_blk_flush(void);

/* ---- net.c: virtio-net; ip.c: ARP, IPv4, ICMP echo, UDP echo -------------------------------- */

#define KG_ETH_MAX 1514

bool kg_net_present(void);
const uint8_t *kg_net_mac(void);
int kg_net_probe(const struct kg_pci_dev *pci);
/* Queues one frame for transmit (copied). 0 or KG_ENOSPC. */
int kg_net_send(const void *frame, size_t len);
/* Hands every received frame to kg_ip_input and refills the receive queue. */
void kg_net_poll(void);
void kg_net_stats(uint64_t *rx, uint64_t *tx);

void kg_ip_input(const uint8_t *frame, size_t len);
/* Sends a gratuitous ARP for the configured address. */
void kg_ip_announce(void);
void kg_ip_config_changed(void);

/* ---- workload.c: counter, heartbeat, power-off timer ------------------------------------- */

void kg_workload_init(uint64_t now);
void kg_workload_poll(uint64_t now);
/* Each module's _next: the TSC at which it next has work (now when busy, UINT64_MAX when
 * never), for the idle sleep in main.c. */
uint64_t kg_workload_next(void);
void kg_workload_config_changed(void);
void kg_workload_exit_changed(void);
uint64_t kg_workload_counter(void);
uint64_t kg_workload_heartbeat(void);

/* ---- mem.c: working memory, fill, dirty, checksum ------------------------------------------ */

void kg_mem_init(const struct kguest_boot_info *bi);
void kg_mem_poll(uint64_t now);
uint64_t kg_mem_next(uint64_t now);
void kg_mem_config_changed(void);
void kg_mem_fill_changed(void);
/* Starts a checksum over the first mib MiB of working memory (~0ull: all of it; 0: the
 * working set); the result goes to the console and the agent when done. */
void kg_mem_csum_start(uint64_t mib);
uint64_t kg_mem_dirtied(void);

/* ---- diskseq.c: the numbered records on the disk --------------------------------------------- */

void kg_diskseq_poll(uint64_t now);
uint64_t kg_diskseq_next(uint64_t now);
void kg_diskseq_config_changed(void);
uint64_t kg_diskseq_last(void);

/* ---- cmd.c: agent commands ---------------------------------------------------------------- */

void kg_cmd_poll(uint64_t now);
uint64_t kg_cmd_next(void);

#endif
