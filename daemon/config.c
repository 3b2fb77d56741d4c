/* Configuration defaults, the INI reader, value parsing and the checks of
 * the configured folders at start; see config.h. */
#include "config.h"

#include <fcntl.h>
#include <ini.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <syslog.h>

#include "log.h"
#include "source-etcd.h"
#include "util.h"

void config_init_defaults(struct config *c)
{
        *c = (struct config){
            .source_url = xstrdup("file:///etc/lii/desired.json"),
            .poll_interval_usec = 30 * USEC_PER_SEC,
            /* A document is capped at 1 MiB: 30 s is about 35 KB/s, far
             * below any working link, far above a trickle. */
            .fetch_timeout_usec = 30 * USEC_PER_SEC,
            /* 512 kbit/s: 100 MiB may take about half an hour. */
            .artifact_min_rate = 64 * 1024,
            .require_signature = true,
            .ca_file = NULL,
            .desired_keys = xstrdup("/etc/lii/keys/desired.d"),
            .artifact_keys = xstrdup("/etc/lii/keys/artifact.d"),
            .node_name = NULL,
            .state_dir = xstrdup("/var/lib/lii"),
            .socket_path = xstrdup("/run/lii/liid.sock"),
            .bus = xstrdup("system"),
            .slice = xstrdup("lii.slice"),
            .max_parallel = 4,
            .keep_revisions = 3,
            .read_group = xstrdup("lii"),
            .admin_group = NULL,
            .log_level = LOG_INFO,
        };
        c->etcd_lease_ttl_usec = 15 * USEC_PER_SEC;
}

void config_done(struct config *c)
{
        char **strings[] = {&c->source_url, &c->ca_file,    &c->desired_keys, &c->artifact_keys,
                            &c->node_name,  &c->state_dir,  &c->socket_path,  &c->bus,
                            &c->slice,      &c->read_group, &c->admin_group,  &c->config_path};
        char **etcd_strings[] = {&c->etcd_ca_file, &c->etcd_key_file, &c->etcd_cert_file,
                                 &c->etcd_username, &c->etcd_password_file};
        for (size_t i = 0; i < ELEMENTSOF(strings); i++) {
                free(*strings[i]);
                *strings[i] = NULL;
        }
        for (size_t i = 0; i < ELEMENTSOF(etcd_strings); i++) {
                free(*etcd_strings[i]);
                *etcd_strings[i] = NULL;
        }
}

enum value_kind {
        V_STRING,
        V_OPT_STRING,
        V_PATH,
        V_OPT_PATH,
        V_DURATION,
        V_SIZE,
        V_BOOL,
        V_UINT,
        V_URL,
        V_BUS,
        V_LEVEL
};

struct option {
        const char *section;
        const char *key;
        enum value_kind kind;
        size_t offset;
        unsigned min, max; /* for V_UINT */
        uint64_t min_usec; /* for V_DURATION */
};

#define OPT(sec, k, kd, field, ...)                                                                \
        {                                                                                          \
                .section = sec, .key = k, .kind = kd, .offset = offsetof(struct config, field),    \
                __VA_ARGS__                                                                        \
        }
static const struct option options[] = {
    OPT("source", "url", V_URL, source_url),
    OPT("source", "poll_interval", V_DURATION, poll_interval_usec),
    OPT("source", "fetch_timeout", V_DURATION, fetch_timeout_usec),
    OPT("source", "artifact_min_rate", V_SIZE, artifact_min_rate),
    OPT("source", "require_signature", V_BOOL, require_signature),
    OPT("source", "ca_file", V_OPT_PATH, ca_file),
    OPT("trust", "desired_keys", V_PATH, desired_keys),
    OPT("trust", "artifact_keys", V_PATH, artifact_keys),
    OPT("node", "name", V_OPT_STRING, node_name),
    OPT("paths", "state_dir", V_PATH, state_dir),
    OPT("paths", "socket", V_PATH, socket_path),
    OPT("systemd", "bus", V_BUS, bus),
    OPT("systemd", "slice", V_STRING, slice),
    OPT("rollout", "max_parallel", V_UINT, max_parallel, .min = 1, .max = 64),
    OPT("rollout", "keep_revisions", V_UINT, keep_revisions, .min = 1, .max = 100),
    OPT("api", "read_group", V_OPT_STRING, read_group),
    OPT("api", "admin_group", V_OPT_STRING, admin_group),
    OPT("log", "level", V_LEVEL, log_level),
    OPT("etcd", "ca_file", V_OPT_PATH, etcd_ca_file),
    OPT("etcd", "cert_file", V_OPT_PATH, etcd_cert_file),
    OPT("etcd", "key_file", V_OPT_PATH, etcd_key_file),
    OPT("etcd", "username", V_OPT_STRING, etcd_username),
    OPT("etcd", "password_file", V_OPT_PATH, etcd_password_file),
    OPT("etcd", "lease_ttl", V_DURATION, etcd_lease_ttl_usec, .min_usec = 2 * USEC_PER_SEC),
};

static int set_string(char **field, const char *value)
{
        free(*field);
        *field = xstrdup(value);
        return 0;
}

/* An empty value means "not set". */
static int set_opt_string(char **field, const char *value)
{
        free(*field);
        *field = *value ? xstrdup(value) : NULL;
        return 0;
}

int config_set(struct config *c, const char *section, const char *key, const char *value,
               char **ret_error)
{
        const struct option *o = NULL;
        bool section_known = false;
        for (size_t i = 0; i < ELEMENTSOF(options); i++) {
                if (strcmp(options[i].section, section) != 0)
                        continue;
                section_known = true;
                if (strcmp(options[i].key, key) == 0)
                        o = &options[i];
        }
        if (!section_known) {
                *ret_error = xasprintf("unknown section [%s]", section);
                return -EINVAL;
        }
        if (!o) {
                *ret_error = xasprintf("unknown key '%s' in [%s]", key, section);
                return -EINVAL;
        }

        void *field = (char *)c + o->offset;
        uint64_t u;
        switch (o->kind) {
        case V_STRING:
                if (!*value) {
                        *ret_error = xasprintf("%s: must not be empty", key);
                        return -EINVAL;
                }
                return set_string(field, value);
        case V_PATH:
        case V_OPT_PATH:
                if (!*value && o->kind == V_OPT_PATH)
                        return set_opt_string(field, value);
                if (!*value) {
                        *ret_error = xasprintf("%s: must not be empty", key);
                        return -EINVAL;
                }
                /* A relative path would depend on the folder liid was
                 * started in ("/" under systemd), not on the file. */
                if (value[0] != '/') {
                        *ret_error = xasprintf("%s: '%s' is not an absolute path", key, value);
                        return -EINVAL;
                }
                return set_string(field, value);
        case V_OPT_STRING:
                return set_opt_string(field, value);
        case V_URL:
                /* file://host/path names a host; liid reads local files. */
                if (strncmp(value, "file://", 7) == 0 && value[7] != '/') {
                        *ret_error = xasprintf("%s: '%s' is not an absolute file:// URL "
                                               "(file:///PATH)",
                                               key, value);
                        return -EINVAL;
                }
                if (strncmp(value, "etcd://", 7) == 0 || strncmp(value, "etcds://", 8) == 0) {
                        struct etcd_url eu;
                        _cleanup_free_ char *why = NULL;
                        if (etcd_url_parse(value, &eu, &why) < 0) {
                                *ret_error = xasprintf("%s: '%s': %s", key, value, why);
                                return -EINVAL;
                        }
                        etcd_url_done(&eu);
                        return set_string(field, value);
                }
                if (strncmp(value, "file:///", 8) != 0 && strncmp(value, "http://", 7) != 0 &&
                    strncmp(value, "https://", 8) != 0) {
                        *ret_error = xasprintf("%s: '%s' is not a file:///, http://, https://, "
                                               "etcd:// or etcds:// URL",
                                               key, value);
                        return -EINVAL;
                }
                return set_string(field, value);
        case V_BUS:
                if (strcmp(value, "system") != 0 && strcmp(value, "user") != 0 &&
                    strncmp(value, "unix:", 5) != 0) {
                        *ret_error = xasprintf("%s: '%s' is not system, user or a unix: address",
                                               key, value);
                        return -EINVAL;
                }
                return set_string(field, value);
        case V_DURATION:
                if (parse_duration(value, &u) < 0 || u == 0) {
                        *ret_error = xasprintf(
                            "%s: '%s' is not a duration (like 500ms, 30s, 5m, 1h)", key, value);
                        return -EINVAL;
                }
                if (u < o->min_usec) {
                        char min[32];
                        format_duration(o->min_usec, min, sizeof min);
                        *ret_error = xasprintf("%s: '%s' is shorter than %s", key, value, min);
                        return -EINVAL;
                }
                *(uint64_t *)field = u;
                return 0;
        case V_SIZE:
                if (parse_size(value, &u) < 0 || u == 0) {
                        *ret_error =
                            xasprintf("%s: '%s' is not a size (like 512, 64K, 1M)", key, value);
                        return -EINVAL;
                }
                *(uint64_t *)field = u;
                return 0;
        case V_BOOL:
                if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 ||
                    strcmp(value, "1") == 0)
                        *(bool *)field = true;
                else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 ||
                         strcmp(value, "0") == 0)
                        *(bool *)field = false;
                else {
                        *ret_error = xasprintf("%s: '%s' is not yes or no", key, value);
                        return -EINVAL;
                }
                return 0;
        case V_UINT: {
                char *end;
                errno = 0;
                unsigned long v = strtoul(value, &end, 10);
                if (!*value || *end || errno || value[0] == '-' || v < o->min || v > o->max) {
                        *ret_error = xasprintf("%s: '%s' is not a whole number from %u to %u", key,
                                               value, o->min, o->max);
                        return -EINVAL;
                }
                *(unsigned *)field = (unsigned)v;
                return 0;
        }
        case V_LEVEL: {
                int l = log_level_from_string(value);
                if (l < 0) {
                        *ret_error =
                            xasprintf("%s: '%s' is not one of error, warning, notice, info, debug",
                                      key, value);
                        return -EINVAL;
                }
                *(int *)field = l;
                return 0;
        }
        }
        return -EINVAL;
}

struct ini_ctx {
        struct config *config;
        FILE *file;
        char *buf; /* getline()'s */
        size_t size;
        int line;       /* lines read so far */
        char *error;    /* the first value refused… */
        int error_line; /* …and its line */
        /* Why reading stopped before the end: a line libinih cannot take
         * whole, which it would cut and read the rest of as a line of its
         * own (a value cut short, the rest maybe a comment). */
        char stop[64];
};

/* libinih's reader: hands it one whole line at a time, or stops (as at the
 * end of the file) at a line that does not fit its buffer or holds a NUL. */
static char *read_line(char *str, int num, void *stream)
{
        struct ini_ctx *ctx = stream;
        ssize_t n = getline(&ctx->buf, &ctx->size, ctx->file);
        if (n < 0)
                return NULL;
        ctx->line++;
        if (memchr(ctx->buf, '\0', (size_t)n))
                snprintf(ctx->stop, sizeof ctx->stop, "contains a NUL byte");
        else if (n >= num)
                snprintf(ctx->stop, sizeof ctx->stop, "line longer than %d bytes", num - 2);
        if (ctx->stop[0])
                return NULL;
        memcpy(str, ctx->buf, (size_t)n + 1);
        return str;
}

static int on_ini_value(void *user, const char *section, const char *name, const char *value)
{
        struct ini_ctx *ctx = user;
        if (ctx->error) /* libinih goes on after an error; the first one is reported */
                return 0;
        if (config_set(ctx->config, section, name, value, &ctx->error) < 0) {
                ctx->error_line = ctx->line;
                return 0;
        }
        return 1;
}

int config_load_file(struct config *c, const char *path, bool missing_ok, char **ret_error)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f) {
                int r = -errno;
                if (r == -ENOENT && missing_ok)
                        return 0;
                *ret_error = xasprintf("%s: %s", path, strerror(-r));
                return r;
        }
        struct ini_ctx ctx = {.config = c, .file = f};
        int line = ini_parse_stream(read_line, &ctx, on_ini_value, &ctx);
        free(ctx.buf);
        _cleanup_free_ char *reason = ctx.error;
        if (line == 0 && !ctx.stop[0]) {
                free(c->config_path);
                c->config_path = xstrdup(path);
                return 0;
        }
        /* The first problem in the file: libinih's own (a syntax error) or
         * a value refused, both before the line that could not be read. */
        if (line > 0)
                *ret_error = xasprintf("%s:%d: %s", path, line,
                                       reason && ctx.error_line == line ? reason : "syntax error");
        else
                *ret_error = xasprintf("%s:%d: %s", path, ctx.line, ctx.stop);
        return -EINVAL;
}

/* liid.service's sandbox makes every folder but its own read-only, which
 * the operator sees as a read-only file system where the host's is not. */
static const char *read_only_hint(int r)
{
        return r == -EROFS ? " (under liid.service, folders other than /var/lib/lii and /run/lii "
                             "are read-only until a drop-in adds them to ReadWritePaths=, see "
                             "liid(8))"
                           : "";
}

/* Says what stops a folder from being made or used: errno's words, except
 * for the one case where they mislead ("Not a directory" about a path that
 * does not exist yet). */
static char *folder_reason(const char *path, int r)
{
        if (r == -ENOTDIR)
                return xasprintf("'%s' is not a folder", path);
        return xasprintf("'%s': %s%s", path, strerror(-r), read_only_hint(r));
}

/* Makes the folders above path (not path itself) with mode 0755, as
 * mkdir -p would. On failure returns a negative errno and sets
 * *ret_reason to what stopped it, naming that folder. */
static int make_parents(const char *path, char **ret_reason)
{
        _cleanup_free_ char *p = xstrdup(path);
        for (char *slash = strchr(p + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
                *slash = '\0';
                int r = mkdir(p, 0755) < 0 ? -errno : 0;
                struct stat st;
                if (r == -EEXIST)
                        r = stat(p, &st) < 0 ? -errno : S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
                if (r < 0) {
                        *ret_reason = folder_reason(p, r);
                        return r;
                }
                *slash = '/';
        }
        return 0;
}

static int writable_folder(const char *path)
{
        return faccessat(AT_FDCWD, path, W_OK | X_OK, AT_EACCESS) < 0 ? -errno : 0;
}

/* The state folder holds the store, from which the instances execute, and
 * liid's state files: liid must be able to make it and write in it, and no
 * one else may change it. */
static int prepare_state_dir(const char *dir, char **ret_error)
{
        _cleanup_free_ char *reason = NULL;
        int r = make_parents(dir, &reason);
        if (r < 0)
                return fail_with(ret_error, r, "state_dir: '%s' cannot be created: %s", dir,
                                 reason);

        /* What the state folder will be on: itself, or its parent until
         * liid makes it. */
        struct stat st;
        const char *on = dir;
        _cleanup_free_ char *parent = NULL;
        if (stat(dir, &st) < 0) {
                if (errno != ENOENT)
                        return fail_with(ret_error, -errno, "state_dir: '%s': %s", dir,
                                         strerror(errno));
                parent = xstrdup(dir);
                *strrchr(parent, '/') = '\0';
                on = *parent ? parent : "/";
                r = writable_folder(on);
                if (r < 0) {
                        reason = folder_reason(on, r);
                        return fail_with(ret_error, r, "state_dir: '%s' cannot be created: %s", dir,
                                         reason);
                }
        } else {
                if (!S_ISDIR(st.st_mode))
                        return fail_with(ret_error, -ENOTDIR, "state_dir: '%s' is not a folder",
                                         dir);
                if (st.st_uid != geteuid())
                        return fail_with(ret_error, -EPERM,
                                         "state_dir: '%s' belongs to uid %u, but liid runs as uid "
                                         "%u: chown it, or choose another folder",
                                         dir, (unsigned)st.st_uid, (unsigned)geteuid());
                if (st.st_mode & (S_IWGRP | S_IWOTH))
                        return fail_with(ret_error, -EPERM,
                                         "state_dir: '%s' is writable by other users (mode %04o), "
                                         "who could change what the instances run: chmod go-w it",
                                         dir, (unsigned)(st.st_mode & 07777));
                r = writable_folder(dir);
                if (r < 0)
                        return fail_with(ret_error, r, "state_dir: '%s' is not writable: %s%s", dir,
                                         strerror(-r), read_only_hint(r));
        }

        struct statvfs vfs;
        if (statvfs(on, &vfs) < 0)
                return fail_with(ret_error, -errno, "state_dir: '%s': %s", on, strerror(errno));
        if (vfs.f_flag & ST_NOEXEC)
                return fail_with(ret_error, -EPERM,
                                 "state_dir: '%s' is on a file system mounted noexec, but the "
                                 "instances run their executables from the store in it: choose "
                                 "another folder, or remount it without noexec",
                                 dir);
        return 0;
}

/* liid makes the socket's folder, binds the socket in it and replaces a
 * stale socket of its own there later: it must be able to write in it,
 * and no other user may own it (who could swap the socket). */
static int prepare_socket_dir(const char *socket_path, char **ret_error)
{
        _cleanup_free_ char *parent = xstrdup(socket_path);
        *strrchr(parent, '/') = '\0';
        const char *dir = *parent ? parent : "/";
        _cleanup_free_ char *reason = NULL;
        int r = make_parents(socket_path, &reason);
        if (r < 0)
                return fail_with(ret_error, r, "socket: '%s' cannot be created: %s", socket_path,
                                 reason);
        struct stat st;
        if (stat(dir, &st) < 0)
                return fail_with(ret_error, -errno, "socket: '%s': %s", dir, strerror(errno));
        if (st.st_uid != geteuid() && st.st_uid != 0)
                return fail_with(ret_error, -EPERM,
                                 "socket: its folder '%s' belongs to uid %u, who could replace "
                                 "the socket: use a folder of root's or liid's (uid %u)",
                                 dir, (unsigned)st.st_uid, (unsigned)geteuid());
        r = writable_folder(dir);
        if (r < 0)
                return fail_with(ret_error, r, "socket: '%s' cannot be created in '%s': %s%s",
                                 socket_path, dir, strerror(-r), read_only_hint(r));
        return 0;
}

/* etcd's user/password authentication needs the password, in a file
 * liid can read. */
static int check_etcd_auth(const struct config *c, char **ret_error)
{
        if (!c->etcd_username)
                return 0;
        if (!c->etcd_password_file)
                return fail_with(ret_error, -EINVAL,
                                 "etcd.password_file: not set, but etcd.username is '%s'",
                                 c->etcd_username);
        if (access(c->etcd_password_file, R_OK) < 0) {
                int err = errno;
                return fail_with(ret_error, -err, "etcd.password_file: '%s' cannot be read: %s",
                                 c->etcd_password_file, strerror(err));
        }
        return 0;
}

int config_prepare_paths(const struct config *c, bool socket_passed, char **ret_error)
{
        int r = check_etcd_auth(c, ret_error);
        if (r < 0)
                return r;
        r = prepare_state_dir(c->state_dir, ret_error);
        if (r < 0)
                return r;
        if (!socket_passed)
                return prepare_socket_dir(c->socket_path, ret_error);
        return 0;
}
