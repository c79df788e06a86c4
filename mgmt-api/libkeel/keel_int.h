/*
 * What libkeel's files share beyond the public headers (kl__ names; not for users).
 */
#ifndef KL_KEEL_INT_H
#define KL_KEEL_INT_H

#include <stdint.h>

#include "mgmt-api/libkeel/keel_client.h"

/* The client's opts.timeout_ms (0: none). */
uint64_t kl__client_timeout_ms(const struct kl_client *c);

#endif
