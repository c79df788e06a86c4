/*
 * A 16550A UART on COM1 (0x3F8, IRQ 4): the VM's console.
 *
 * Transmit is immediate: each byte goes to the console log fd and to every connected
 * console client. Received bytes come from console clients (the console socket, served on
 * the event thread) into a 4 KiB FIFO. Interrupts (received data, transmitter empty) drive
 * GSI 4 as a level when MCR.OUT2 is set, as Linux's 8250 driver expects; kguest polls.
 *
 * Saved state (little-endian): u32 version(1), u8 dll dlm ier lcr mcr scr fcr thre_pending,
 * u32 rx_len, rx bytes (<= 4096).
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kernel/guest/abi.h"
#include "kernel/vmm/dev/uart.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/frame.h"
#include "lib/heap.h"

#define UART_IRQ      4
#define RX_MAX	      4096
#define MAX_CLIENTS   8
#define STATE_VERSION 1

struct vmm_uart {
	struct vmm_vm *vm;
	pthread_mutex_t lock;
	uint8_t dll, dlm, ier, lcr, mcr, scr, fcr;
	bool thre_pending;
	bool irq_level;
	uint8_t rx[RX_MAX];
	uint32_t rx_head, rx_len;
	int out_fd;    /* console log, borrowed */
	int listen_fd; /* console socket, -1 if none */
	int clients[MAX_CLIENTS];
};

static void update_irq(struct vmm_uart *u)
{
	bool level = false;

	if ((u->ier & 1) && u->rx_len > 0)
		level = true;
	if ((u->ier & 2) && u->thre_pending)
		level = true;
	if (!(u->mcr & 0x08))
		level = false; /* OUT2 gates the interrupt on PCs */
	if (level != u->irq_level) {
		u->irq_level = level;
		vmm_irq_line(u->vm, UART_IRQ, level);
	}
}

static void emit(struct vmm_uart *u, uint8_t c)
{
	if (u->out_fd >= 0 && write(u->out_fd, &c, 1) < 0) {
		/* the console log is best effort: a full disk must not stop the guest */
	}
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (u->clients[i] >= 0 &&
		    send(u->clients[i], &c, 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
		    errno != EAGAIN) {
			vmm_event_del(u->vm, u->clients[i]);
			close(u->clients[i]);
			u->clients[i] = -1;
		}
	}
}

static void uart_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct vmm_uart *u = opaque;
	uint8_t v = 0;

	pthread_mutex_lock(&u->lock);
	switch (off) {
	case 0:
		if (u->lcr & 0x80) {
			v = u->dll;
		} else if (u->rx_len > 0) {
			v = u->rx[u->rx_head];
			u->rx_head = (u->rx_head + 1) % RX_MAX;
			u->rx_len--;
		}
		break;
	case 1:
		v = (u->lcr & 0x80) ? u->dlm : u->ier;
		break;
	case 2:
		if ((u->ier & 1) && u->rx_len > 0) {
			v = 0x04;
		} else if ((u->ier & 2) && u->thre_pending) {
			v = 0x02;
			u->thre_pending = false;
		} else {
			v = 0x01;
		}
		if (u->fcr & 1)
			v |= 0xc0;
		break;
	case 3:
		v = u->lcr;
		break;
	case 4:
		v = u->mcr;
		break;
	case 5:
		v = 0x60 | (u->rx_len > 0 ? 1 : 0); /* THRE | TEMT | DR */
		break;
	case 6:
		v = (u->mcr & 0x10) ? (uint8_t)((u->mcr & 0x0f) << 4) : 0xb0; /* DCD DSR CTS */
		break;
	case 7:
		v = u->scr;
		break;
	}
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
	memset(data, 0, len);
	*(uint8_t *)data = v;
}

static void uart_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct vmm_uart *u = opaque;
	uint8_t v = *(const uint8_t *)data;

	pthread_mutex_lock(&u->lock);
	switch (off) {
	case 0:
		if (u->lcr & 0x80) {
			u->dll = v;
		} else {
			emit(u, v);
			u->thre_pending = true;
		}
		break;
	case 1:
		if (u->lcr & 0x80) {
			u->dlm = v;
		} else {
			if (!(u->ier & 2) && (v & 2))
				u->thre_pending = true;
			u->ier = v & 0x0f;
		}
		break;
	case 2:
		u->fcr = v & 0xc9;
		if (v & 2) {
			u->rx_len = 0;
			u->rx_head = 0;
		}
		break;
	case 3:
		u->lcr = v;
		break;
	case 4:
		u->mcr = v & 0x1f;
		break;
	case 7:
		u->scr = v;
		break;
	}
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

static const struct vmm_io_ops uart_ops = {.read = uart_read, .write = uart_write};

int vmm_uart_input(struct vmm_uart *u, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i;

	pthread_mutex_lock(&u->lock);
	for (i = 0; i < n && u->rx_len < RX_MAX; i++) {
		u->rx[(u->rx_head + u->rx_len) % RX_MAX] = b[i];
		u->rx_len++;
	}
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return (int)i;
}

static void client_ready(void *arg, int fd, uint32_t events)
{
	struct vmm_uart *u = arg;
	uint8_t buf[512];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n > 0) {
		vmm_uart_input(u, buf, (size_t)n);
		return;
	}
	if (n < 0 && errno == EAGAIN)
		return;
	pthread_mutex_lock(&u->lock);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (u->clients[i] == fd) {
			vmm_event_del(u->vm, fd);
			close(fd);
			u->clients[i] = -1;
		}
	}
	pthread_mutex_unlock(&u->lock);
}

static void accept_ready(void *arg, int fd, uint32_t events)
{
	struct vmm_uart *u = arg;
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (c < 0)
		return;
	pthread_mutex_lock(&u->lock);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (u->clients[i] < 0) {
			u->clients[i] = c;
			pthread_mutex_unlock(&u->lock);
			if (vmm_event_add(u->vm, c, EPOLLIN, client_ready, u) < 0)
				client_ready(u, c, 0);
			return;
		}
	}
	pthread_mutex_unlock(&u->lock);
	close(c); /* too many console clients */
}

int vmm_uart_set_output(struct vmm_uart *u, int fd)
{
	pthread_mutex_lock(&u->lock);
	u->out_fd = fd;
	pthread_mutex_unlock(&u->lock);
	return 0;
}

int vmm_uart_listen(struct vmm_uart *u, const char *path)
{
	int fd = kb_unix_listen(path, 4);
	int rv;

	if (fd < 0)
		return fd;
	rv = vmm_event_add(u->vm, fd, EPOLLIN, accept_ready, u);
	if (rv < 0) {
		close(fd);
		return rv;
	}
	u->listen_fd = fd;
	return 0;
}

static int uart_save(void *opaque, struct kb_buf *out)
{
	struct vmm_uart *u = opaque;
	uint8_t regs[8] = {u->dll, u->dlm, u->ier, u->lcr, u->mcr, u->scr, u->fcr, u->thre_pending};
	int rv;

	rv = kb_buf_put_u32(out, STATE_VERSION);
	rv = rv ?: kb_buf_append(out, regs, sizeof(regs));
	rv = rv ?: kb_buf_put_u32(out, u->rx_len);
	for (uint32_t i = 0; rv == 0 && i < u->rx_len; i++)
		rv = kb_buf_put_u8(out, u->rx[(u->rx_head + i) % RX_MAX]);
	return rv;
}

static int uart_restore(void *opaque, struct kb_reader *in)
{
	struct vmm_uart *u = opaque;
	uint8_t regs[8];
	uint32_t ver = kb_rd_u32(in);

	kb_rd_copy(in, regs, sizeof(regs));
	uint32_t n = kb_rd_u32(in);
	const uint8_t *rx = n <= RX_MAX ? kb_rd_bytes(in, n) : NULL;
	if (in->err)
		return in->err;
	if (ver != STATE_VERSION)
		return KB_EVERSION;
	if (n > RX_MAX || rx == NULL || regs[7] > 1)
		return KB_EPROTO;
	pthread_mutex_lock(&u->lock);
	u->dll = regs[0], u->dlm = regs[1], u->ier = regs[2] & 0x0f, u->lcr = regs[3];
	u->mcr = regs[4] & 0x1f, u->scr = regs[5], u->fcr = regs[6], u->thre_pending = regs[7];
	memcpy(u->rx, rx, n);
	u->rx_head = 0;
	u->rx_len = n;
	u->irq_level = false;
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static void uart_reset(void *opaque)
{
	struct vmm_uart *u = opaque;

	pthread_mutex_lock(&u->lock);
	u->dll = 0x0c, u->dlm = 0, u->ier = 0, u->lcr = 0x03, u->mcr = 0x08, u->scr = 0;
	u->fcr = 0;
	u->thre_pending = false;
	u->rx_len = u->rx_head = 0;
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

static void uart_destroy(void *opaque)
{
	struct vmm_uart *u = opaque;

	if (u->listen_fd >= 0)
		close(u->listen_fd);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (u->clients[i] >= 0)
			close(u->clients[i]);
	}
	pthread_mutex_destroy(&u->lock);
	kb_free(u);
}

static const struct vmm_dev_ops uart_dev_ops = {
    .name = "uart",
    .save = uart_save,
    .restore = uart_restore,
    .reset = uart_reset,
    .destroy = uart_destroy,
};

int vmm__uart_create(struct vmm_vm *vm, struct kb_errmsg *err)
{
	struct vmm_uart *u = kb_calloc(1, sizeof(*u));
	int rv;

	if (u == NULL)
		return -ENOMEM;
	u->vm = vm;
	pthread_mutex_init(&u->lock, NULL);
	u->out_fd = -1;
	u->listen_fd = -1;
	for (int i = 0; i < MAX_CLIENTS; i++)
		u->clients[i] = -1;
	u->dll = 0x0c, u->lcr = 0x03, u->mcr = 0x08;
	rv = vmm_dev_register(vm, VMM_DEV_ID(VMM_DEV_UART, 0), &uart_dev_ops, u);
	if (rv < 0) {
		uart_destroy(u);
		kb_errmsg_setf(err, "registering the UART: %s", kb_strerror(rv));
		return rv;
	}
	rv = vmm_bus_add(&vm->pio, KGUEST_PORT_COM1, 8, &uart_ops, u);
	if (rv < 0) {
		kb_errmsg_setf(err, "UART ports: %s", kb_strerror(rv));
		return rv;
	}
	vm->uart = u;
	return 0;
}
