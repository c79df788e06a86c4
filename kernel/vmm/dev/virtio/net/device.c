/*
 * virtio-net device: creation on a tap (or any frame fd), its configuration space, its
 * place on the PCI bus and on the event thread. Queue handling is in rxtx.c, saved state
 * in state.c.
 *
 * Offered: VERSION_1, INDIRECT_DESC, MAC (the configured address) and STATUS (link up).
 * No offloads, no mergeable RX buffers, no control queue: queue 0 receives, queue 1
 * transmits, 256 entries each.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kernel/vmm/devices.h"
#include "kernel/vmm/dev/virtio/net/net.h"
#include "lib/heap.h"

static void net_cfg_read(struct vmm_virtio *v, unsigned off, void *data, unsigned len)
{
	struct vmm_virtio_net *n = kb_container_of(v, struct vmm_virtio_net, v);
	uint8_t img[VIRTIO_NET_CFG_SIZE] = {0};
	uint16_t pairs = 1;

	memcpy(&img[0], n->mac, 6);
	memcpy(&img[6], &n->link, 2);
	memcpy(&img[8], &pairs, 2);
	memcpy(data, &img[off], len);
}

static void net_reset(struct vmm_virtio *v)
{
	struct vmm_virtio_net *n = kb_container_of(v, struct vmm_virtio_net, v);

	n->rx_stalled = true;
}

/* DRIVER_OK: take frames that waited and anything the guest queued before. */
static void net_start(struct vmm_virtio *v)
{
	struct vmm_virtio_net *n = kb_container_of(v, struct vmm_virtio_net, v);

	vmm__net_rx(n);
	vmm__net_tx(n);
}

static const struct vmm_virtio_ops net_ops = {
    .notify = vmm__net_notify,
    .cfg_read = net_cfg_read,
    .reset = net_reset,
    .start = net_start,
};

/* Event thread: the backend has frames. */
static void net_event(void *arg, int fd, uint32_t events)
{
	struct vmm_virtio_net *n = arg;

	pthread_mutex_lock(&n->v.lock);
	vmm__net_rx(n);
	pthread_mutex_unlock(&n->v.lock);
}

int vmm__virtio_net_create_fd(struct vmm_vm *vm, int fd, const uint8_t mac[6],
			      struct vmm_virtio_net **out, struct kb_errmsg *err)
{
	struct vmm_virtio_net *n;
	uint32_t inst;
	char name[16];
	int rv;

	if (vm->pci == NULL) {
		kb_errmsg_setf(err, "virtio-net: no PCI bus");
		rv = KB_ESTATE;
		goto err_fd;
	}
	n = kb_calloc(1, sizeof(*n));
	if (n == NULL) {
		kb_errmsg_setf(err, "virtio-net: out of memory");
		rv = -ENOMEM;
		goto err_fd;
	}
	n->fd = fd;
	memcpy(n->mac, mac, 6);
	n->link = VIRTIO_NET_S_LINK_UP;
	n->rx_stalled = true;

	inst = vmm__virtio_instance(vm, VMM_DEV_VIRTIO_NET);
	snprintf(name, sizeof(name), "virtio-net%u", inst);
	rv = vmm__virtio_init(&n->v, vm, VIRTIO_ID_NET, 0x020000 /* network, Ethernet */, 2,
			      VIRTIO_NET_QUEUE_SIZE, VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS,
			      VIRTIO_NET_CFG_SIZE, &net_ops, name);
	if (rv < 0) {
		kb_errmsg_setf(err, "%s: transport setup: %s", name, kb_strerror(rv));
		goto err_free;
	}
	rv = vmm_dev_register(vm, VMM_DEV_ID(VMM_DEV_VIRTIO_NET, inst), &vmm__net_dev_ops, n);
	if (rv < 0) {
		kb_errmsg_setf(err, "%s: registering: %s", name, kb_strerror(rv));
		goto err_transport;
	}
	/* From here the device list owns n and its fd. */
	rv = vmm__virtio_register(&n->v);
	if (rv < 0) {
		kb_errmsg_setf(err, "%s: placing on the PCI bus: %s", name, kb_strerror(rv));
		return rv;
	}
	rv = vmm_event_add(vm, fd, EPOLLIN | EPOLLET, net_event, n);
	if (rv < 0) {
		kb_errmsg_setf(err, "%s: watching the backend: %s", name, kb_strerror(rv));
		return rv;
	}
	n->ev_added = true;
	kb_log(n->v.log, KB_LOG_INFO,
	       "%s: MAC %02x:%02x:%02x:%02x:%02x:%02x, PCI slot %u, BAR 0x%llx, GSI %u", name,
	       mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], n->v.pci.slot,
	       (unsigned long long)n->v.pci.bar[VIRTIO_BAR].addr, n->v.pci.gsi);
	if (out != NULL)
		*out = n;
	return 0;

err_transport:
	vmm__virtio_close(&n->v);
err_free:
	kb_free(n);
err_fd:
	close(fd);
	return rv;
}

int vmm_virtio_net_create(struct vmm_vm *vm, const char *tap_name, const uint8_t mac[6],
			  struct kb_errmsg *err)
{
	struct ifreq ifr;
	int fd, rv, hdr = VIRTIO_NET_HDR_SIZE;

	if (tap_name[0] == '\0' || strlen(tap_name) >= IFNAMSIZ) {
		kb_errmsg_setf(err, "virtio-net: bad tap name \"%s\"", tap_name);
		return KB_ECONFIG;
	}
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "virtio-net: opening /dev/net/tun: %s", kb_strerror(rv));
		return rv;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	memcpy(ifr.ifr_name, tap_name, strlen(tap_name));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "virtio-net: attaching to tap %s: %s", tap_name,
			       kb_strerror(rv));
		goto err_close;
	}
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0 || ioctl(fd, TUNSETOFFLOAD, 0) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "virtio-net: configuring tap %s: %s", tap_name,
			       kb_strerror(rv));
		goto err_close;
	}
	rv = vmm__virtio_net_create_fd(vm, fd, mac, NULL, err);
	if (rv < 0)
		kb_errmsg_wrapf(err, "tap %s", tap_name);
	return rv;

err_close:
	close(fd);
	return rv;
}
