/*
 * QueryPerf (vim_perf.c, docs/top.md): the host's worlds with their CPU, memory, VM exit,
 * network and disk rates, from vmkernel's VmkPerf. System.Read on this host.
 */
#ifndef HD_VIM_PERF_H
#define HD_VIM_PERF_H

#include "hostagent/grpc.h"

/* Handler of QueryPerf (loop thread). */
void hd_vim_query_perf(struct hd_call *call, const ProtobufCMessage *req);

#endif
