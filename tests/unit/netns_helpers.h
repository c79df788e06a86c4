/*
 * Private network namespaces for the tests of kernel/net on real interfaces.
 *
 * th_netns_init(), once from main(), moves the process into a private mount namespace and
 * checks that it can make network namespaces; each test then enters a fresh network
 * namespace in its setup and returns to the original one in its teardown, and everything
 * made inside disappears with it. Nothing ever runs in the machine's own namespace.
 */
#ifndef TEST_NETNS_HELPERS_H
#define TEST_NETNS_HELPERS_H

#include <stdbool.h>

/* Remembers the original network namespace, makes the mount namespace private and probes
 * for network namespaces; when they cannot be made, says so on stderr as prog. Returns
 * whether the tests can run. */
bool th_netns_init(const char *prog);
/* What th_netns_init() returned. */
bool th_netns_ready(void);
/* Unshares a fresh network namespace; *entered tells whether the process left the original
 * one (and must go back). 0, or -1 on failure or when still in the original namespace. */
int th_netns_enter(bool *entered);
/* Back to the original network namespace: 0 or -1. */
int th_netns_leave(void);
/* In a cmocka test: skips it when namespaces are not available, and asserts that it does
 * not run in the original namespace. */
void th_netns_need(void);

#endif
