# ft/ — fault tolerance (docs/ft.md): the secondary's checkpoint staging (ckpt.c) and the
# two sides in vmx. Uses the vMotion stream (vmotion/wire.h) in FT mode.
LIBFT := $(BUILD)/lib/libft.a
$(LIBFT): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard ft/*.c))
LIBS += $(LIBFT)
