/* The state file: its JSON form and its atomic replacement; see state.h. */
#include "state.h"

#include <fcntl.h>
#include <libgen.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

static void json_object_putp(json_object **o)
{
        json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

struct instance *instance_new(const char *service, uint64_t generation, const char *spec_json,
                              const char *spec_sha256, const char *artifact_sha256, int port)
{
        struct instance *i = xcalloc(1, sizeof *i);
        i->generation = generation;
        i->unit = xasprintf("lii-%s@%llu.service", service, (unsigned long long)generation);
        i->spec_json = xstrdup(spec_json);
        snprintf(i->spec_sha256, sizeof i->spec_sha256, "%s", spec_sha256);
        snprintf(i->artifact_sha256, sizeof i->artifact_sha256, "%s", artifact_sha256);
        i->port = port;
        return i;
}

struct instance *instance_free(struct instance *i)
{
        if (i) {
                free(i->unit);
                free(i->spec_json);
                free(i->artifact_key_id);
                free(i->artifact_comment);
                free(i);
        }
        return NULL;
}

void state_remember_artifact(struct service_state *ss, const char *sha256, unsigned keep)
{
        size_t n = strv_length(ss->artifacts);
        char **v = xcalloc(keep + 1, sizeof *v);
        size_t k = 0;
        v[k++] = xstrdup(sha256);
        for (size_t i = 0; i < n; i++) {
                if (k < keep && strcmp(ss->artifacts[i], sha256) != 0)
                        v[k++] = ss->artifacts[i];
                else
                        free(ss->artifacts[i]);
        }
        free(ss->artifacts);
        ss->artifacts = v;
}

void rollout_record_set(struct rollout_record *r, enum lii_result result, const char *reason,
                        uint64_t started_usec, uint64_t finished_usec)
{
        free(r->reason);
        r->result = result;
        r->reason = reason ? xstrdup(reason) : NULL;
        r->started_usec = started_usec;
        r->finished_usec = finished_usec;
}

static struct service_state *service_state_free(struct service_state *s)
{
        if (s) {
                free(s->name);
                instance_free(s->current);
                instance_free(s->previous);
                instance_free(s->pending);
                free(s->last_rollout.reason);
                strv_free(s->artifacts);
                free(s);
        }
        return NULL;
}

struct state *state_free(struct state *s)
{
        if (s) {
                for (size_t i = 0; i < s->n_services; i++)
                        service_state_free(s->services[i]);
                free(s->services);
                free(s);
        }
        return NULL;
}

/* s->services is kept sorted by name: a lookup is a binary search. */
static size_t search(const struct state *s, const char *name, bool *ret_found)
{
        return sorted_by_name_search((void *const *)s->services, s->n_services,
                                     offsetof(struct service_state, name), name, ret_found);
}

struct service_state *state_find(const struct state *s, const char *name)
{
        bool found;
        size_t i = search(s, name, &found);
        return found ? s->services[i] : NULL;
}

struct service_state *state_get(struct state *s, const char *name)
{
        bool found;
        size_t i = search(s, name, &found);
        if (found)
                return s->services[i];
        struct service_state **v = realloc(s->services, (s->n_services + 1) * sizeof *v);
        if (!v)
                abort();
        s->services = v;
        memmove(&v[i + 1], &v[i], (s->n_services - i) * sizeof *v);
        v[i] = xcalloc(1, sizeof *v[i]);
        v[i]->name = xstrdup(name);
        s->n_services++;
        return v[i];
}

void state_remove(struct state *s, const char *name)
{
        bool found;
        size_t i = search(s, name, &found);
        if (!found)
                return;
        service_state_free(s->services[i]);
        memmove(&s->services[i], &s->services[i + 1], (s->n_services - i - 1) * sizeof *s->services);
        s->n_services--;
}

/* ---- JSON form ---- */

static json_object *instance_to_json(const struct instance *i)
{
        if (!i)
                return NULL;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "generation", json_object_new_uint64(i->generation));
        json_object_object_add(o, "unit", json_object_new_string(i->unit));
        json_object_object_add(o, "spec", json_object_new_string(i->spec_json));
        json_object_object_add(o, "spec_sha256", json_object_new_string(i->spec_sha256));
        json_object_object_add(o, "artifact_sha256", json_object_new_string(i->artifact_sha256));
        json_object_object_add(o, "port", json_object_new_int(i->port));
        json_object_object_add(o, "started_usec", json_object_new_uint64(i->started_usec));
        if (i->artifact_key_id)
                json_object_object_add(o, "artifact_key_id",
                                       json_object_new_string(i->artifact_key_id));
        if (i->artifact_comment)
                json_object_object_add(o, "artifact_comment",
                                       json_object_new_string(i->artifact_comment));
        return o;
}

static json_object *state_to_json(const struct state *s)
{
        json_object *root = json_object_new_object();
        json_object_object_add(root, "format", json_object_new_string(STATE_FORMAT));
        json_object *src = json_object_new_object();
        json_object_object_add(src, "serial", json_object_new_uint64(s->serial));
        json_object_object_add(src, "doc_sha256", json_object_new_string(s->doc_sha256));
        json_object_object_add(src, "clock_high_water_usec",
                               json_object_new_uint64(s->clock_high_water_usec));
        json_object_object_add(root, "source", src);
        json_object_object_add(root, "paused", json_object_new_boolean(s->paused));
        json_object *svcs = json_object_new_object();
        for (size_t i = 0; i < s->n_services; i++) {
                const struct service_state *ss = s->services[i];
                json_object *o = json_object_new_object();
                json_object_object_add(o, "last_generation",
                                       json_object_new_uint64(ss->last_generation));
                json_object_object_add(o, "current", instance_to_json(ss->current));
                json_object_object_add(o, "previous", instance_to_json(ss->previous));
                json_object_object_add(o, "pending", instance_to_json(ss->pending));
                json_object_object_add(o, "refused_spec_sha256",
                                       json_object_new_string(ss->refused_spec_sha256));
                json_object_object_add(o, "removed", json_object_new_boolean(ss->removed));
                json_object_object_add(o, "held", json_object_new_boolean(ss->held));
                json_object_object_add(o, "watch_until_usec",
                                       json_object_new_uint64(ss->watch_until_usec));
                json_object *arts = json_object_new_array();
                for (char **a = ss->artifacts; a && *a; a++)
                        json_object_array_add(arts, json_object_new_string(*a));
                json_object_object_add(o, "artifacts", arts);
                json_object *lr = json_object_new_object();
                json_object_object_add(lr, "result", json_object_new_int(ss->last_rollout.result));
                json_object_object_add(lr, "reason",
                                       ss->last_rollout.reason
                                               ? json_object_new_string(ss->last_rollout.reason)
                                               : NULL);
                json_object_object_add(lr, "started_usec",
                                       json_object_new_uint64(ss->last_rollout.started_usec));
                json_object_object_add(lr, "finished_usec",
                                       json_object_new_uint64(ss->last_rollout.finished_usec));
                json_object_object_add(o, "last_rollout", lr);
                json_object_object_add(svcs, ss->name, o);
        }
        json_object_object_add(root, "services", svcs);
        return root;
}

/* Reading the state file trusts its shape only as far as it checks it: a
 * file that is not what liid writes is refused as a whole. */
static const char *get_string(json_object *o, const char *key)
{
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static bool get_u64(json_object *o, const char *key, uint64_t *ret)
{
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return false;
        *ret = json_object_get_uint64(v);
        return true;
}

static bool copy_sha(char dst[65], const char *src, bool empty_ok)
{
        if (!src || (!(empty_ok && !*src) && !is_hex_string(src, 64)))
                return false;
        snprintf(dst, 65, "%s", src);
        return true;
}

static int instance_from_json(json_object *o, const char *service, struct instance **ret)
{
        if (!o) {
                *ret = NULL;
                return 0;
        }
        uint64_t gen, started = 0, port;
        const char *spec = get_string(o, "spec");
        const char *spec_sha = get_string(o, "spec_sha256");
        const char *art_sha = get_string(o, "artifact_sha256");
        if (!get_u64(o, "generation", &gen) || gen == 0 || !spec || !get_u64(o, "port", &port) ||
            port > 65535)
                return -EINVAL;
        get_u64(o, "started_usec", &started);
        struct instance *i = instance_new(service, gen, spec, "", "", (int)port);
        i->started_usec = started;
        const char *key_id = get_string(o, "artifact_key_id");
        const char *comment = get_string(o, "artifact_comment");
        i->artifact_key_id = key_id ? xstrdup(key_id) : NULL;
        i->artifact_comment = comment ? xstrdup(comment) : NULL;
        if (!copy_sha(i->spec_sha256, spec_sha, false) ||
            !copy_sha(i->artifact_sha256, art_sha, false)) {
                instance_free(i);
                return -EINVAL;
        }
        *ret = i;
        return 0;
}

static int service_from_json(struct state *s, const char *name, json_object *o)
{
        if (!service_name_is_valid(name) || !json_object_is_type(o, json_type_object))
                return -EINVAL;
        struct service_state *ss = state_get(s, name);
        json_object *v, *lr;
        if (!get_u64(o, "last_generation", &ss->last_generation))
                return -EINVAL;
        const char *keys[] = { "current", "previous", "pending" };
        struct instance **slots[] = { &ss->current, &ss->previous, &ss->pending };
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                v = NULL;
                json_object_object_get_ex(o, keys[i], &v);
                if (instance_from_json(v, name, slots[i]) < 0)
                        return -EINVAL;
        }
        if (!copy_sha(ss->refused_spec_sha256, get_string(o, "refused_spec_sha256"), true))
                return -EINVAL;
        /* Generations must never repeat: a record whose counter is behind
         * one of its own instances cannot be trusted. */
        for (size_t i = 0; i < ELEMENTSOF(slots); i++)
                if (*slots[i] && (*slots[i])->generation > ss->last_generation)
                        return -EINVAL;
        if (json_object_object_get_ex(o, "removed", &v))
                ss->removed = json_object_get_boolean(v);
        if (json_object_object_get_ex(o, "held", &v))
                ss->held = json_object_get_boolean(v);
        get_u64(o, "watch_until_usec", &ss->watch_until_usec);
        if (json_object_object_get_ex(o, "artifacts", &v)) {
                if (!json_object_is_type(v, json_type_array) ||
                    json_object_array_length(v) > STATE_MAX_ARTIFACTS)
                        return -EINVAL;
                size_t n = json_object_array_length(v);
                ss->artifacts = xcalloc(n + 1, sizeof *ss->artifacts);
                for (size_t i = 0; i < n; i++) {
                        json_object *a = json_object_array_get_idx(v, i);
                        const char *sha = json_object_is_type(a, json_type_string)
                                                  ? json_object_get_string(a)
                                                  : NULL;
                        if (!sha || !is_hex_string(sha, 64))
                                return -EINVAL;
                        ss->artifacts[i] = xstrdup(sha);
                }
        }
        if (json_object_object_get_ex(o, "last_rollout", &lr)) {
                uint64_t result = 0;
                get_u64(lr, "result", &result);
                if (result >= _LII_RESULT_MAX)
                        return -EINVAL;
                ss->last_rollout.result = (enum lii_result)result;
                const char *reason = get_string(lr, "reason");
                ss->last_rollout.reason = reason ? xstrdup(reason) : NULL;
                get_u64(lr, "started_usec", &ss->last_rollout.started_usec);
                get_u64(lr, "finished_usec", &ss->last_rollout.finished_usec);
        }
        return 0;
}

int state_load(const char *path, struct state **ret, char **ret_error)
{
        struct state *s = xcalloc(1, sizeof *s);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT) {
                        *ret = s;
                        return 0;
                }
                int r = -errno;
                *ret_error = xasprintf("%s: %s", path, strerror(errno));
                state_free(s);
                return r;
        }
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;
        for (;;) {
                if (len == cap) {
                        cap = cap ? cap * 2 : 65536;
                        if (cap > STATE_MAX_BYTES + 1)
                                cap = STATE_MAX_BYTES + 1;
                        char *nb = realloc(buf, cap);
                        if (!nb)
                                abort();
                        buf = nb;
                }
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0) {
                        int r = -errno;
                        *ret_error = xasprintf("%s: %s", path, strerror(errno));
                        state_free(s);
                        return r;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len > STATE_MAX_BYTES) {
                        *ret_error = xasprintf("%s: larger than %u bytes", path, STATE_MAX_BYTES);
                        state_free(s);
                        return -EFBIG;
                }
        }
        _cleanup_json_ json_object *root = NULL;
        json_tokener *tok = json_tokener_new();
        root = json_tokener_parse_ex(tok, buf, (int)len);
        bool complete = json_tokener_get_error(tok) == json_tokener_success &&
                        (size_t)json_tokener_get_parse_end(tok) == len;
        json_tokener_free(tok);
        json_object *src, *svcs;
        const char *format = root ? get_string(root, "format") : NULL;
        if (!complete || !format || strcmp(format, STATE_FORMAT) != 0 ||
            !json_object_object_get_ex(root, "source", &src) ||
            !json_object_object_get_ex(root, "services", &svcs) ||
            !json_object_is_type(svcs, json_type_object))
                goto invalid;
        const char *doc_sha = get_string(src, "doc_sha256");
        if (!get_u64(src, "serial", &s->serial) || !copy_sha(s->doc_sha256, doc_sha, true))
                goto invalid;
        get_u64(src, "clock_high_water_usec", &s->clock_high_water_usec);
        json_object *paused;
        if (json_object_object_get_ex(root, "paused", &paused))
                s->paused = json_object_get_boolean(paused);
        json_object_object_foreach(svcs, name, o)
        {
                if (service_from_json(s, name, o) < 0)
                        goto invalid;
        }
        *ret = s;
        return 0;
invalid:
        *ret_error = xasprintf("%s: not a valid %s state file", path, STATE_FORMAT);
        state_free(s);
        return -EBADMSG;
}

static int write_all(int fd, const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, buf, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

int state_save(const struct state *s, const char *path)
{
        _cleanup_json_ json_object *root = state_to_json(s);
        const char *text = json_object_to_json_string_ext(
                root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
        _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
        _cleanup_free_ char *dir_buf = xstrdup(path);
        const char *dir = dirname(dir_buf);

        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        int r = write_all(fd, text, strlen(text));
        if (r == 0)
                r = write_all(fd, "\n", 1);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        if (rename(tmp, path) < 0) {
                r = -errno;
                unlink(tmp);
                return r;
        }
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        if (fsync(dfd) < 0)
                return -errno;
        return 0;
}
