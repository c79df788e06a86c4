/*
 * Datastores: named directories that hold VM directories, local to this host or shared
 * with others (an NFS or cluster mount). The registry lives in <state dir>/datastores.conf
 * (format in docs/datastores.md); at first start it holds one local datastore, "datastore1"
 * at <state dir>/datastore1.
 *
 * The registry is not thread-safe: one thread at a time (the caller serialises). Every
 * function that touches the file system blocks (statvfs on a shared datastore can block
 * for as long as its server does) and belongs off the event loop.
 */
#ifndef VMK_DS_DATASTORE_H
#define VMK_DS_DATASTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define VMK_DS_NAME_MAX	    63		/* bytes in a datastore name */
#define VMK_DS_PATH_MAX	    1023	/* bytes in a datastore path */
#define VMK_DS_MAX	    64		/* datastores in one registry */
#define VMK_DS_CONF_MAX	    (64 * 1024) /* bytes in datastores.conf */
#define VMK_DS_CONF_FILE    "datastores.conf"
#define VMK_DS_DEFAULT_NAME "datastore1"

struct vmk_ds {
	char name[VMK_DS_NAME_MAX + 1];
	char path[VMK_DS_PATH_MAX + 1]; /* absolute; canonical (realpath) when it was added */
	bool shared;
};

struct vmk_ds_registry {
	char state_dir[VMK_DS_PATH_MAX + 1];
	char conf_path[VMK_DS_PATH_MAX + 32];
	struct vmk_ds *ds; /* owned; n entries in file order */
	size_t n;
};

/* One datastore with its space, for listings. */
struct vmk_ds_info {
	struct vmk_ds ds;
	uint64_t capacity; /* bytes; 0 when space_err */
	uint64_t free;	   /* bytes available to vmkernel; 0 when space_err */
	int space_err;	   /* 0, or -errno from statvfs (e.g. a shared datastore not mounted) */
};

/* Loads <state_dir>/datastores.conf into a caller-allocated registry. At first start (no
 * such file) creates the directory <state_dir>/datastore1 (0750) if needed, registers it as
 * the local datastore "datastore1" and saves the file. state_dir must exist. On success the
 * caller closes reg with vmk_ds_registry_close(); on error nothing needs closing and err
 * says why: KB_ETOOBIG, KB_EPROTO or KB_EVERSION (a bad file, with the line), KB_ECONFIG,
 * -ENOMEM or -errno. */
int vmk_ds_registry_init(struct vmk_ds_registry *reg, const char *state_dir, struct kb_errmsg *err);
/* Frees the registry's memory; nothing on disk changes. */
void vmk_ds_registry_close(struct vmk_ds_registry *reg);

/* Registers the existing directory path (absolute; symlinks are resolved and the canonical
 * path stored) as datastore name (1..63 of [A-Za-z0-9._-], not "." or ".."), and saves the
 * file. Refused: a bad name or path (KB_ECONFIG), a name or directory already registered
 * (KB_EEXIST), a directory inside or around another datastore or around the state dir
 * (KB_ECONFIG), more than VMK_DS_MAX datastores (KB_ETOOBIG), a path that is missing or not
 * a directory (-errno). On error the registry is unchanged. Invalidates pointers from
 * vmk_ds_lookup() and friends. */
int vmk_ds_add(struct vmk_ds_registry *reg, const char *name, const char *path, bool shared,
	       struct kb_errmsg *err);

/* Unregisters datastore name and saves the file; its directory is left alone. vms is the
 * number of VMs registered on it: anything but 0 is refused with KB_ESTATE. KB_ENOTFOUND
 * for an unknown name, -errno if the file cannot be written (the registry is unchanged).
 * Invalidates pointers from vmk_ds_lookup() and friends. */
int vmk_ds_remove(struct vmk_ds_registry *reg, const char *name, uint32_t vms,
		  struct kb_errmsg *err);

/* Lookups. The pointers are borrowed from the registry until the next add, remove or
 * close. */
size_t vmk_ds_count(const struct vmk_ds_registry *reg);
const struct vmk_ds *vmk_ds_at(const struct vmk_ds_registry *reg, size_t i);
/* NULL when no datastore has that name. */
const struct vmk_ds *vmk_ds_lookup(const struct vmk_ds_registry *reg, const char *name);
/* Where VMs go when a request names no datastore: "datastore1" if registered, else the
 * first datastore; NULL when there is none. */
const struct vmk_ds *vmk_ds_default(const struct vmk_ds_registry *reg);

/* Capacity and free space (bytes available to unprivileged users) of ds's file system.
 * 0 or -errno. */
int vmk_ds_space(const struct vmk_ds *ds, uint64_t *capacity, uint64_t *free_bytes);

/* Every datastore with its space, in registry order. On success *out (n entries, possibly
 * 0 and NULL) is owned by the caller, who frees it with kb_free(). A datastore whose space
 * cannot be read is listed with space_err set. 0 or -ENOMEM. */
int vmk_ds_list(const struct vmk_ds_registry *reg, struct vmk_ds_info **out, size_t *n);

/* Finds the datastore containing path (which must exist): both are resolved with realpath
 * and compared at a path-component boundary, so symlinks and ".." that lead out of a
 * datastore do not count as inside it. *ds gets the datastore and rel (if not NULL) the
 * rest of the path, without a leading "/" ("" for the datastore directory itself).
 * 0, KB_ENOTFOUND, -ENAMETOOLONG (rel too small) or -errno from realpath. */
int vmk_ds_find_path(const struct vmk_ds_registry *reg, const char *path, const struct vmk_ds **ds,
		     char *rel, size_t rel_size);

/* True if name can be a datastore or VM directory name: 1..63 of [A-Za-z0-9._-], not "."
 * or "..". */
bool vmk_ds_name_valid(const char *name);

/* The directory of VM vm_name on ds, "<ds path>/<vm_name>", into out. KB_ECONFIG for a
 * name that is not a single safe component (see vmk_ds_name_valid()), -ENAMETOOLONG. */
int vmk_ds_vm_dir(const struct vmk_ds *ds, const char *vm_name, char *out, size_t size);

/* The .vmx file of VM vm_name on ds, "<ds path>/<vm_name>/<vm_name>.vmx". Errors as
 * vmk_ds_vm_dir(). */
int vmk_ds_vmx_path(const struct vmk_ds *ds, const char *vm_name, char *out, size_t size);

/* Makes the VM directory (mode 0750, then fsyncs the datastore directory) and puts its path
 * in out. KB_ECONFIG for a bad name, KB_EEXIST if something by that name exists already,
 * -ENAMETOOLONG or -errno; err says which. */
int vmk_ds_vm_dir_create(const struct vmk_ds *ds, const char *vm_name, char *out, size_t size,
			 struct kb_errmsg *err);

#endif
