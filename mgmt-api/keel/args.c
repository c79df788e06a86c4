/*
 * Command-line arguments: the global options, a leaf command's options and positional
 * arguments, and the --help text of every node of the command tree.
 *
 * Options are long only (`--name VALUE` or `--name=VALUE`), may come before, between or
 * after the positional arguments, and `--` ends them. Global options are accepted at every
 * level. A leaf's options are checked against its table: unknown options, missing values,
 * values given to flags, a non-repeatable option given twice, and too few or too many
 * positional arguments are usage errors (exit 2) reported with a pointer to --help.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "mgmt-api/keel/keel.h"

static const struct kc_opt global_opts[] = {
    {"json", NULL, "machine-readable output: one JSON object on stdout", 0, false},
    {"socket", "PATH", "vmkernel's socket (default: $KEEL_SOCKET or " KC_DEFAULT_SOCKET ")", 0,
     false},
    {"local", NULL, "talk to this host's vmkernel through its socket (the default)", 0, false},
    {"server", "URL",
     "hostd's API (https://HOST:8443) for commands that support it (default: $KEEL_SERVER)", 0,
     false},
    {"timeout", "SECONDS", "how long to wait for a reply (default 300; 0: no limit)", 0, false},
    {"help", NULL, "show help for this command (also -h)", 0, false},
    {NULL, NULL, NULL, 0, false},
};

/* Splits "--name=value" / "--name": name length into *nlen, the value after '=' or NULL. */
static const char *split_opt(const char *arg, size_t *nlen)
{
	const char *name = arg + 2, *eq = strchr(name, '=');

	*nlen = eq ? (size_t)(eq - name) : strlen(name);
	return eq ? eq + 1 : NULL;
}

static bool name_is(const char *name, size_t nlen, const char *want)
{
	return strlen(want) == nlen && strncmp(name, want, nlen) == 0;
}

int kc_global_opt(struct kc_ctx *ctx, int argc, char **argv, int *i)
{
	const char *arg = argv[*i], *name = arg + 2, *val;
	uint64_t ms;
	size_t nlen;

	if (strncmp(arg, "--", 2) != 0)
		return 0;
	val = split_opt(arg, &nlen);
	if (name_is(name, nlen, "json") || name_is(name, nlen, "local")) {
		if (val) {
			kc_fail(ctx, KC_EXIT_USAGE, -EINVAL, "option --%.*s takes no value",
				(int)nlen, name);
			return -1;
		}
		if (name[0] == 'j')
			ctx->json = true;
		else
			ctx->local = true;
		return 1;
	}
	if (!name_is(name, nlen, "socket") && !name_is(name, nlen, "timeout") &&
	    !name_is(name, nlen, "server"))
		return 0;
	if (!val) {
		if (*i + 1 >= argc) {
			kc_fail(ctx, KC_EXIT_USAGE, -EINVAL, "option --%.*s needs a value",
				(int)nlen, name);
			return -1;
		}
		val = argv[++*i];
	}
	if (name_is(name, nlen, "server")) {
		if (strncmp(val, "https://", 8) != 0 || val[8] == '\0') {
			kc_fail(ctx, KC_EXIT_USAGE, -EINVAL,
				"bad --server '%s': want https://HOST:PORT", val);
			return -1;
		}
		ctx->server = val;
		ctx->server_env = false;
		return 1;
	}
	if (name[0] == 's') {
		if (val[0] == '\0') {
			kc_fail(ctx, KC_EXIT_USAGE, -EINVAL, "option --socket needs a path");
			return -1;
		}
		ctx->socket = val;
		return 1;
	}
	if (kc_parse_seconds(val, &ms) != 0) {
		kc_fail(ctx, KC_EXIT_USAGE, -EINVAL, "bad --timeout '%s': want seconds", val);
		return -1;
	}
	ctx->timeout_ms = ms;
	return 1;
}

int kc_usage(struct kc_ctx *ctx, const struct kc_call *call, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kc_fail(ctx, KC_EXIT_USAGE, -EINVAL, "%s", msg);
	fprintf(stderr, "Run '%s --help' for usage.\n", call->path);
	return KC_EXIT_USAGE;
}

static const struct kc_opt *find_opt(const struct kc_opt *opts, const char *name, size_t nlen)
{
	for (; opts && opts->name; opts++)
		if (name_is(name, nlen, opts->name))
			return opts;
	return NULL;
}

int kc_args_parse(struct kc_ctx *ctx, const struct kc_cmd *cmd, const char *path, int argc,
		  char **argv, struct kc_call *call, bool *help)
{
	bool opts_done = false;

	memset(call, 0, sizeof(*call));
	call->cmd = cmd;
	call->path = path;
	*help = false;
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *val;
		const struct kc_opt *o;
		size_t nlen;
		int g;

		if (opts_done || arg[0] != '-' || arg[1] == '\0') {
			if (call->npos >= cmd->max_pos || call->npos >= KC_MAX_POS)
				return kc_usage(ctx, call, "unexpected argument '%s'", arg);
			call->pos[call->npos++] = arg;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			opts_done = true;
			continue;
		}
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			*help = true;
			return KC_EXIT_OK;
		}
		g = kc_global_opt(ctx, argc, argv, &i);
		if (g < 0)
			return KC_EXIT_USAGE;
		if (g > 0)
			continue;
		if (arg[1] != '-')
			return kc_usage(ctx, call, "unknown option '%s'", arg);
		val = split_opt(arg, &nlen);
		o = find_opt(cmd->opts, arg + 2, nlen);
		if (!o)
			return kc_usage(ctx, call, "unknown option '--%.*s'", (int)nlen, arg + 2);
		if (o->arg && !val) {
			if (i + 1 >= argc)
				return kc_usage(ctx, call, "option --%s needs a value (%s)",
						o->name, o->arg);
			val = argv[++i];
		} else if (!o->arg && val) {
			return kc_usage(ctx, call, "option --%s takes no value", o->name);
		}
		if (!o->repeat && kc_has(call, o->id))
			return kc_usage(ctx, call, "option --%s given twice", o->name);
		if (call->nopts >= KC_MAX_OPTS)
			return kc_usage(ctx, call, "too many options (at most %d)", KC_MAX_OPTS);
		call->opts[call->nopts++] = (struct kc_call_opt){.id = o->id, .val = val};
	}
	if (call->npos < cmd->min_pos)
		return kc_usage(ctx, call, "missing argument: %s", cmd->args ? cmd->args : "");
	return KC_EXIT_OK;
}

const char *kc_opt(const struct kc_call *call, int id)
{
	const char *val = NULL;

	for (int i = 0; i < call->nopts; i++)
		if (call->opts[i].id == id)
			val = call->opts[i].val;
	return val;
}

bool kc_has(const struct kc_call *call, int id)
{
	for (int i = 0; i < call->nopts; i++)
		if (call->opts[i].id == id)
			return true;
	return false;
}

static void print_opts(FILE *f, const char *title, const struct kc_opt *opts)
{
	char left[64];
	int w = 0;

	for (const struct kc_opt *o = opts; o->name; o++) {
		int n = snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "",
				 o->arg ? o->arg : "");
		w = n > w ? n : w;
	}
	fprintf(f, "\n%s:\n", title);
	for (const struct kc_opt *o = opts; o->name; o++) {
		snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "",
			 o->arg ? o->arg : "");
		fprintf(f, "  %-*s  %s%s\n", w, left, o->help, o->repeat ? " (repeatable)" : "");
	}
}

void kc_help(const struct kc_cmd *cmd, const char *path, FILE *f)
{
	bool root = strchr(path, ' ') == NULL;
	int w = 0;

	if (cmd->subs) {
		fprintf(f, "Usage: %s %s\n\n%s\n", path,
			root ? "[options] NOUN VERB [ARGS]" : "COMMAND [ARGS] [options]",
			cmd->summary);
		if (cmd->detail)
			fprintf(f, "\n%s", cmd->detail);
		for (const struct kc_cmd *const *s = cmd->subs; *s; s++) {
			int n = (int)strlen((*s)->name) +
				((*s)->args ? 1 + (int)strlen((*s)->args) : 0);
			w = n > w ? n : w;
		}
		fprintf(f, "\n%s:\n", root ? "Nouns" : "Commands");
		for (const struct kc_cmd *const *s = cmd->subs; *s; s++) {
			char left[128];

			snprintf(left, sizeof(left), "%s%s%s", (*s)->name, (*s)->args ? " " : "",
				 (*s)->args ? (*s)->args : "");
			fprintf(f, "  %-*s  %s\n", w, left, (*s)->summary);
		}
		if (root)
			print_opts(f, "Global options (accepted by every command)", global_opts);
		else
			fprintf(f,
				"\nGlobal options: --json, --socket PATH, --local, --server URL, "
				"--timeout SECONDS (see 'keel --help').\n");
		fprintf(f, "\nRun '%s %s --help' for more.\n", path, root ? "NOUN" : "COMMAND");
		return;
	}
	fprintf(f, "Usage: %s%s%s [options]\n\n%s\n", path, cmd->args ? " " : "",
		cmd->args ? cmd->args : "", cmd->summary);
	if (cmd->detail)
		fprintf(f, "\n%s", cmd->detail);
	if (cmd->opts && cmd->opts->name)
		print_opts(f, "Options", cmd->opts);
	print_opts(f, "Global options", global_opts);
}
