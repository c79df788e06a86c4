/*
 * Fuzz target: the datastores.conf parser (kernel/ds/datastore.c), reached as vmkernel
 * reaches it: the bytes become <state dir>/datastores.conf and vmk_ds_registry_init() loads
 * them. The file always exists, so the registry never creates its default datastore and
 * an iteration costs one small write and one read. A refused file must come with a
 * message; an accepted one must hold only what the parser promises (at most VMK_DS_MAX
 * datastores with valid, distinct names and absolute paths).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel/ds/datastore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char state[64];
static char conf[128];

static void cleanup(void)
{
	unlink(conf);
	rmdir(state);
}

static void make_state_dir(void)
{
	snprintf(state, sizeof(state), "/tmp/keel-fuzz-ds-XXXXXX");
	if (mkdtemp(state) == NULL) {
		perror("fuzz_datastore_conf: mkdtemp");
		exit(2);
	}
	snprintf(conf, sizeof(conf), "%s/%s", state, VMK_DS_CONF_FILE);
	atexit(cleanup);
}

static void check(const struct vmk_ds_registry *reg)
{
	size_t n = vmk_ds_count(reg);

	if (n > VMK_DS_MAX) {
		fprintf(stderr, "fuzz_datastore_conf: %zu datastores accepted\n", n);
		abort();
	}
	for (size_t i = 0; i < n; i++) {
		const struct vmk_ds *ds = vmk_ds_at(reg, i);
		if (!vmk_ds_name_valid(ds->name) || ds->path[0] != '/' ||
		    vmk_ds_lookup(reg, ds->name) != ds) {
			fprintf(stderr, "fuzz_datastore_conf: accepted \"%s\" at \"%s\"\n",
				ds->name, ds->path);
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kb_errmsg err = {{0}};
	struct vmk_ds_registry reg;
	int fd;

	if (state[0] == '\0')
		make_state_dir();
	fd = open(conf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
		perror("fuzz_datastore_conf: writing the file");
		exit(2);
	}
	close(fd);
	if (vmk_ds_registry_init(&reg, state, &err) == 0) {
		check(&reg);
		vmk_ds_registry_close(&reg);
	} else if (err.msg[0] == '\0') {
		fprintf(stderr, "fuzz_datastore_conf: a refused file gave no message\n");
		abort();
	}
	return 0;
}
