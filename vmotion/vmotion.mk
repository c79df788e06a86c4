# vmotion/ — live migration between two vmx processes (docs/vmotion.md): the stream
# (wire.c) and the two sides (send.c, recv.c). Linked into vmx; uses OpenSSL's libcrypto
# (AES-GCM, HMAC, HKDF) and lib/ and kernel/vmm headers.
LIBVMOTION      := $(BUILD)/lib/libvmotion.a
VMOTION_LIBS    := $(shell pkg-config --libs libcrypto 2>/dev/null || echo -lcrypto)
$(LIBVMOTION): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard vmotion/*.c))
LIBS += $(LIBVMOTION)
