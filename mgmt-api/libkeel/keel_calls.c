/*
 * libkeel's typed calls (keel_calls.h): the functions of the KL_VIM_CALLS list, each a
 * kl_client_call with the method's name and reply descriptor, and the list as data.
 */
#include "mgmt-api/libkeel/keel_calls.h"

#define KL__VIM_CALL_DEFINE(M, name, Rq, rq, Rp, rp)                                     \
	int kl_vim_##name(struct kl_client *c, const Keel__Vim__##Rq *req,               \
			  Keel__Vim__##Rp **reply, struct kl_status *st)                 \
	{                                                                                \
		return kl_client_call(c, #M, &req->base, &keel__vim__##rp##__descriptor, \
				      (ProtobufCMessage **)reply, st);                   \
	}
KL_VIM_CALLS(KL__VIM_CALL_DEFINE)

#define KL__VIM_CALL_INFO(M, name, Rq, rq, Rp, rp) \
	{#M, &keel__vim__##rq##__descriptor, &keel__vim__##rp##__descriptor},

const struct kl_vim_call_info kl_vim_calls[] = {KL_VIM_CALLS(KL__VIM_CALL_INFO)};
const size_t kl_vim_calls_count = sizeof(kl_vim_calls) / sizeof(kl_vim_calls[0]);
