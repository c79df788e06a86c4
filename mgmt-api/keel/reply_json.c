/*
 * --json output of a VmkReply: the reply's content under its proto field names.
 *
 * The reply's own fields appear when they are set (or when the command always shows them,
 * such as "vms" for `vm list`, so an empty list is [] rather than missing). Messages inside
 * it (VmInfo, VmSpec, HostInfo, ...) are written whole by walking their protobuf-c
 * descriptors, defaults included, so a script sees the same keys every time and a field
 * added to proto/vmk.proto shows up without a change here. bytes fields are written as
 * strings (invalid UTF-8 replaced), which suits the console tail they carry.
 */
#include <string.h>

#include "mgmt-api/keel/keel.h"

static void put_message(struct kc_json *j, const char *key, const ProtobufCMessage *m);

static const void *field_ptr(const ProtobufCMessage *m, unsigned offset)
{
	return (const char *)m + offset;
}

/* Writes one value of field f stored at p. */
static void put_value(struct kc_json *j, const char *key, const ProtobufCFieldDescriptor *f,
		      const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		kc_json_i64(j, key, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		kc_json_i64(j, key, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		kc_json_u64(j, key, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		kc_json_u64(j, key, *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		kc_json_double(j, key, *(const float *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		kc_json_double(j, key, *(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		kc_json_bool(j, key, *(const protobuf_c_boolean *)p);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumValue *ev =
		    protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
		if (ev)
			kc_json_str(j, key, ev->name);
		else
			kc_json_i64(j, key, *(const int *)p);
		break;
	}
	case PROTOBUF_C_TYPE_STRING:
		kc_json_str(j, key, *(char *const *)p);
		break;
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;
		kc_json_strn(j, key, b->data ? (const void *)b->data : "", b->len);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		put_message(j, key, *(ProtobufCMessage *const *)p);
		break;
	}
}

static size_t type_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	}
	return 0;
}

/* Whether a singular field holds something other than its default. */
static bool field_set(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	const void *p = field_ptr(m, f->offset);

	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return *(const size_t *)field_ptr(m, f->quantifier_offset) > 0;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)field_ptr(m, f->quantifier_offset) == f->id;
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		return s && s[0] != '\0';
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		return *(ProtobufCMessage *const *)p != NULL;
	case PROTOBUF_C_TYPE_BYTES:
		return ((const ProtobufCBinaryData *)p)->len > 0;
	default: {
		static const unsigned char zero[8];
		return memcmp(p, zero, type_size(f->type)) != 0;
	}
	}
}

/* Writes field f of m: arrays for repeated fields, null for an absent message. Oneof
 * members other than the chosen one are left out. */
static void put_field(struct kc_json *j, const ProtobufCMessage *m,
		      const ProtobufCFieldDescriptor *f)
{
	const void *p = field_ptr(m, f->offset);

	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t n = *(const size_t *)field_ptr(m, f->quantifier_offset);
		const char *arr = *(char *const *)p;
		size_t sz = type_size(f->type);

		kc_json_arr_begin(j, f->name);
		for (size_t i = 0; i < n; i++)
			put_value(j, NULL, f, arr + i * sz);
		kc_json_arr_end(j);
		return;
	}
	if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && !field_set(m, f))
		return;
	put_value(j, f->name, f, p);
}

static void put_message(struct kc_json *j, const char *key, const ProtobufCMessage *m)
{
	if (!m) {
		kc_json_null(j, key);
		return;
	}
	kc_json_obj_begin(j, key);
	for (unsigned i = 0; i < m->descriptor->n_fields; i++)
		put_field(j, m, &m->descriptor->fields[i]);
	kc_json_obj_end(j);
}

static const struct {
	const char *field;
	unsigned bit;
} always_fields[] = {
    {"vms", KC_R_VMS},
    {"datastores", KC_R_DATASTORES},
    {"host", KC_R_HOST},
    {"log_lines", KC_R_LOG},
    {"console_tail", KC_R_CONSOLE},
    {"vswitches", KC_R_VSWITCHES},
    {"portgroups", KC_R_PORTGROUPS},
    {"vmknics", KC_R_VMKNICS},
    {"netstacks", KC_R_NETSTACKS},
};

static bool always_shown(const char *field, unsigned always)
{
	for (size_t i = 0; i < sizeof(always_fields) / sizeof(always_fields[0]); i++)
		if (strcmp(always_fields[i].field, field) == 0)
			return (always & always_fields[i].bit) != 0;
	return false;
}

void kc_reply_json(const Keel__Vmk__VmkReply *rp, unsigned always)
{
	const ProtobufCMessage *m = &rp->base;
	struct kc_json j;

	kc_json_init(&j, stdout);
	kc_json_obj_begin(&j, NULL);
	kc_json_bool(&j, "ok", rp->code == 0);
	for (unsigned i = 0; i < m->descriptor->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];

		if (strcmp(f->name, "code") == 0 || field_set(m, f) ||
		    always_shown(f->name, always))
			put_field(&j, m, f);
	}
	kc_json_obj_end(&j);
	kc_json_finish(&j);
}

void kc_message_json_fields(struct kc_json *j, const ProtobufCMessage *m, const char *skip)
{
	for (unsigned i = 0; i < m->descriptor->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];

		if (!skip || strcmp(f->name, skip) != 0)
			put_field(j, m, f);
	}
}
