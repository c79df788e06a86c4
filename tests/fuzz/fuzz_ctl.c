/*
 * Fuzz target: the control-socket decoding path — the incremental frame decoder
 * (lib/frame.c) fed in odd-sized pieces, and every frame decoded as a VmxRequest.
 */
#include <stdint.h>
#include <stdlib.h>

#include "lib/frame.h"
#include "vmk.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kb_frame_decoder d;
	size_t off = 0, step = 1;

	kb_frame_decoder_init(&d, 64 << 10);
	while (off < size) {
		size_t n = size - off < step ? size - off : step;
		if (kb_frame_feed(&d, data + off, n) < 0)
			break;
		off += n;
		step = step * 3 % 97 + 1;
		const uint8_t *msg;
		size_t len;
		int rv;
		while ((rv = kb_frame_next(&d, &msg, &len)) == 1) {
			Keel__Vmk__VmxRequest *rq = keel__vmk__vmx_request__unpack(NULL, len, msg);
			if (rq != NULL)
				keel__vmk__vmx_request__free_unpacked(rq, NULL);
		}
		if (rv < 0)
			break;
	}
	kb_frame_decoder_close(&d);
	return 0;
}
