/*
 * hostd's blocking calls to the host's daemons (vmkernel, clusterd): one framed request
 * and one framed reply (lib/frame.h) on a fresh Unix connection. Worker threads only.
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "hostagent/vim.h"
#include "lib/buf.h"
#include "lib/frame.h"

uint8_t *hd_backend_call(const char *path, const ProtobufCMessage *rq, unsigned timeout_s,
			 size_t max, size_t *len)
{
	struct timeval tv = {timeout_s, 0};
	struct kb_buf in;
	uint8_t *out = NULL;
	int fd = kb_unix_connect(path);

	if (fd < 0)
		return NULL;
	if (timeout_s)
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	kb_buf_init(&in, 0);
	if (kb_frame_send_pb(fd, rq) == 0 && kb_frame_recv(fd, &in, max) == 0) {
		out = in.data;
		*len = in.len;
		in.data = NULL;
	}
	kb_buf_close(&in);
	close(fd);
	return out;
}
