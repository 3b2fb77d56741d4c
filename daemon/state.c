/* The state files: their JSON form and their atomic replacement; see state.h. */
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include "unit-name.h"
#include "util.h"

struct instance *instance_new(const char *service, uint64_t generation, const char *spec_json,
                              const char *spec_sha256, const char *artifact_sha256, int port)
{
        struct instance *i = xcalloc(1, sizeof *i);
        i->generation = generation;
        char unit[UNIT_NAME_SIZE];
        i->unit = xstrdup(unit_name_instance(unit, service, generation));
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

void rollout_record_set(struct rollout_record *r, uint64_t generation, enum lii_result result,
                        const char *reason, uint64_t started_usec, uint64_t finished_usec)
{
        free(r->reason);
        r->generation = generation;
        r->result = result;
        /* A reason may be cut short in the middle of a character (health
         * checks write theirs into fixed buffers); state_load() would
         * refuse the file that held it. */
        r->reason = reason ? utf8_escape_invalid(reason) : NULL;
        r->started_usec = started_usec;
        r->finished_usec = finished_usec;
}

struct service_state *state_service_free(struct service_state *s)
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

static char *strdup_or_null(const char *s)
{
        return s ? xstrdup(s) : NULL;
}

static struct instance *instance_copy(const struct instance *i)
{
        if (!i)
                return NULL;
        struct instance *c = xcalloc(1, sizeof *c);
        *c = *i;
        c->unit = xstrdup(i->unit);
        c->spec_json = xstrdup(i->spec_json);
        c->artifact_key_id = strdup_or_null(i->artifact_key_id);
        c->artifact_comment = strdup_or_null(i->artifact_comment);
        return c;
}

/* Every pointer of struct service_state and struct instance is copied
 * here: a field added there needs its line here too. */
struct service_state *state_service_copy(const struct service_state *ss)
{
        struct service_state *c = xcalloc(1, sizeof *c);
        *c = *ss;
        c->name = xstrdup(ss->name);
        c->current = instance_copy(ss->current);
        c->previous = instance_copy(ss->previous);
        c->pending = instance_copy(ss->pending);
        size_t n = strv_length(ss->artifacts);
        c->artifacts = ss->artifacts ? xcalloc(n + 1, sizeof *c->artifacts) : NULL;
        for (size_t i = 0; i < n; i++)
                c->artifacts[i] = xstrdup(ss->artifacts[i]);
        c->last_rollout.reason = strdup_or_null(ss->last_rollout.reason);
        return c;
}

void state_service_swap(struct service_state *a, struct service_state *b)
{
        struct service_state t = *a;
        *a = *b;
        *b = t;
}

struct state *state_free(struct state *s)
{
        if (s) {
                for (size_t i = 0; i < s->n_services; i++)
                        state_service_free(s->services[i]);
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
        state_service_free(s->services[i]);
        memmove(&s->services[i], &s->services[i + 1],
                (s->n_services - i - 1) * sizeof *s->services);
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

/* The node's file: the source's anti-rollback facts and the pause. */
static json_object *node_to_json(const struct state *s)
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
        return root;
}

/* One service's file. */
static json_object *service_to_json(const struct service_state *ss)
{
        json_object *o = json_object_new_object();
        json_object_object_add(o, "format", json_object_new_string(STATE_FORMAT));
        json_object_object_add(o, "last_generation", json_object_new_uint64(ss->last_generation));
        json_object_object_add(o, "current", instance_to_json(ss->current));
        json_object_object_add(o, "previous", instance_to_json(ss->previous));
        json_object_object_add(o, "pending", instance_to_json(ss->pending));
        json_object_object_add(o, "refused_spec_sha256",
                               json_object_new_string(ss->refused_spec_sha256));
        json_object_object_add(o, "removed", json_object_new_boolean(ss->removed));
        json_object_object_add(o, "held", json_object_new_boolean(ss->held));
        json_object_object_add(o, "watch_until_usec", json_object_new_uint64(ss->watch_until_usec));
        json_object *arts = json_object_new_array();
        for (char **a = ss->artifacts; a && *a; a++)
                json_object_array_add(arts, json_object_new_string(*a));
        json_object_object_add(o, "artifacts", arts);
        json_object *lr = json_object_new_object();
        json_object_object_add(lr, "generation",
                               json_object_new_uint64(ss->last_rollout.generation));
        json_object_object_add(lr, "result", json_object_new_int(ss->last_rollout.result));
        json_object_object_add(
            lr, "reason",
            ss->last_rollout.reason ? json_object_new_string(ss->last_rollout.reason) : NULL);
        json_object_object_add(lr, "started_usec",
                               json_object_new_uint64(ss->last_rollout.started_usec));
        json_object_object_add(lr, "finished_usec",
                               json_object_new_uint64(ss->last_rollout.finished_usec));
        json_object_object_add(o, "last_rollout", lr);
        return o;
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

static bool copy_sha(char dst[static SHA256_HEX_LEN + 1], const char *src, bool empty_ok)
{
        if (!src || (!(empty_ok && !*src) && !is_hex_string(src, SHA256_HEX_LEN)))
                return false;
        snprintf(dst, SHA256_HEX_LEN + 1, "%s", src);
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
        const char *keys[] = {"current", "previous", "pending"};
        struct instance **slots[] = {&ss->current, &ss->previous, &ss->pending};
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
                        if (!sha || !is_hex_string(sha, SHA256_HEX_LEN))
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
                /* Absent from state files written before it was recorded. */
                get_u64(lr, "generation", &ss->last_rollout.generation);
        }
        return 0;
}

/* Parses a whole file that must be one JSON object of lii's format.
 * Returns NULL when it is not. */
static json_object *parse_file(const char *path, size_t max, char **ret_error, int *ret_r)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r = read_file_capped(path, max, &buf, &len);
        if (r < 0) {
                *ret_r = r;
                if (r == -EFBIG)
                        *ret_error = xasprintf("%s: larger than %zu bytes", path, max);
                else
                        *ret_error = xasprintf("%s: %s", path, read_file_strerror(r));
                return NULL;
        }
        json_tokener *tok = json_tokener_new();
        json_object *root = json_tokener_parse_ex(tok, buf, (int)len);
        bool complete = json_tokener_get_error(tok) == json_tokener_success &&
                        (size_t)json_tokener_get_parse_end(tok) == len;
        json_tokener_free(tok);
        if (!complete || !json_object_is_type(root, json_type_object)) {
                json_object_put(root);
                *ret_r = -EBADMSG;
                *ret_error = xasprintf("%s: not JSON", path);
                return NULL;
        }
        /* liid writes nothing but strict UTF-8 without NUL (every string
         * comes from a checked document, systemd or liid itself), so a
         * file with anything else was damaged or written by someone else;
         * json-c would take it, and D-Bus would refuse it later. */
        _cleanup_free_ char *why = NULL;
        if (json_text_check_strings(buf, len, &why) < 0) {
                json_object_put(root);
                *ret_r = -EBADMSG;
                *ret_error = xasprintf("%s: %s", path, why);
                return NULL;
        }
        return root;
}

static int invalid(const char *path, char **ret_error)
{
        *ret_error = xasprintf("%s: not a valid %s state file", path, STATE_FORMAT);
        return -EBADMSG;
}

static int load_node(struct state *s, const char *path, json_object *root, char **ret_error)
{
        json_object *src, *paused;
        if (!json_object_object_get_ex(root, "source", &src))
                return invalid(path, ret_error);
        const char *doc_sha = get_string(src, "doc_sha256");
        if (!get_u64(src, "serial", &s->serial) || !copy_sha(s->doc_sha256, doc_sha, true))
                return invalid(path, ret_error);
        get_u64(src, "clock_high_water_usec", &s->clock_high_water_usec);
        if (json_object_object_get_ex(root, "paused", &paused))
                s->paused = json_object_get_boolean(paused);
        return 0;
}

/* Format 1 kept every service in state.json; it is read once and written
 * back in format 2 (see state_save_all()). */
static int load_legacy_services(struct state *s, const char *path, json_object *root,
                                char **ret_error)
{
        json_object *svcs;
        if (!json_object_object_get_ex(root, "services", &svcs) ||
            !json_object_is_type(svcs, json_type_object))
                return invalid(path, ret_error);
        json_object_object_foreach(svcs, name, o)
        {
                if (service_from_json(s, name, o) < 0)
                        return invalid(path, ret_error);
        }
        s->legacy = true;
        return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
        size_t n = strlen(s), m = strlen(suffix);
        return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int load_services(struct state *s, const char *dir, char **ret_error)
{
        _cleanup_free_ char *sdir = xasprintf("%s/" STATE_SERVICES_DIR, dir);
        DIR *d = opendir(sdir);
        if (!d) {
                if (errno == ENOENT)
                        return 0;
                int r = -errno;
                *ret_error = xasprintf("%s: %s", sdir, strerror(errno));
                return r;
        }
        int r = 0;
        struct dirent *de;
        while (r == 0 && (errno = 0, de = readdir(d))) {
                const char *f = de->d_name;
                /* A temporary file is a save that a crash cut short: the
                 * file it was to replace still holds the last saved state. */
                if (f[0] == '.' || has_suffix(f, ".json.tmp"))
                        continue;
                _cleanup_free_ char *path = xasprintf("%s/%s", sdir, f);
                _cleanup_free_ char *name =
                    has_suffix(f, ".json") ? strndup(f, strlen(f) - strlen(".json")) : NULL;
                if (!name || !service_name_is_valid(name)) {
                        *ret_error = xasprintf("%s: not a service's state file "
                                               "(expected <service>.json)",
                                               path);
                        r = -EBADMSG;
                        break;
                }
                _cleanup_json_ json_object *root = parse_file(path, STATE_MAX_BYTES, ret_error, &r);
                if (!root)
                        break;
                const char *format = get_string(root, "format");
                if (!format || strcmp(format, STATE_FORMAT) != 0 ||
                    service_from_json(s, name, root) < 0)
                        r = invalid(path, ret_error);
        }
        if (r == 0 && errno != 0) {
                r = -errno;
                *ret_error = xasprintf("%s: %s", sdir, strerror(errno));
        }
        closedir(d);
        return r;
}

int state_load(const char *dir, struct state **ret, char **ret_error)
{
        struct state *s = xcalloc(1, sizeof *s);
        _cleanup_free_ char *path = xasprintf("%s/" STATE_NODE_FILE, dir);
        int r = 0;
        _cleanup_json_ json_object *root = parse_file(path, STATE_MAX_BYTES, ret_error, &r);
        if (!root && r == -ENOENT) {
                free(*ret_error);
                *ret_error = NULL;
                r = 0;
        } else if (root) {
                const char *format = get_string(root, "format");
                if (format && strcmp(format, STATE_FORMAT) == 0)
                        r = load_node(s, path, root, ret_error);
                else if (format && strcmp(format, STATE_FORMAT_1) == 0)
                        r = load_node(s, path, root, ret_error)
                                ?: load_legacy_services(s, path, root, ret_error);
                else
                        r = invalid(path, ret_error);
        }
        if (r == 0 && !s->legacy)
                r = load_services(s, dir, ret_error);
        if (r < 0) {
                state_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

/* Replaces dir/name with the JSON of o: temp file, fsync, rename, fsync of
 * the folder. */
static int write_json_atomic(const char *dir, const char *name, json_object *o)
{
        const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
        _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
        _cleanup_close_ int fd =
            open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        int r = write_all(fd, text, strlen(text));
        if (r == 0)
                r = write_all(fd, "\n", 1);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        return fsync_dir(dir);
}

int state_save_node(const struct state *s, const char *dir)
{
        _cleanup_json_ json_object *o = node_to_json(s);
        return write_json_atomic(dir, STATE_NODE_FILE, o);
}

int state_save_service(const struct service_state *ss, const char *dir)
{
        _cleanup_free_ char *sdir = xasprintf("%s/" STATE_SERVICES_DIR, dir);
        _cleanup_free_ char *name = xasprintf("%s.json", ss->name);
        _cleanup_json_ json_object *o = service_to_json(ss);
        int r = write_json_atomic(sdir, name, o);
        if (r != -ENOENT)
                return r;
        /* The first save makes the folder, durably. */
        if (mkdir(sdir, 0700) < 0 && errno != EEXIST)
                return -errno;
        r = fsync_dir(dir);
        return r < 0 ? r : write_json_atomic(sdir, name, o);
}

int state_save_all(struct state *s, const char *dir)
{
        /* The services first: a format 1 file is replaced only once every
         * service it held has a file of its own. */
        for (size_t i = 0; i < s->n_services; i++) {
                int r = state_save_service(s->services[i], dir);
                if (r < 0)
                        return r;
        }
        int r = state_save_node(s, dir);
        if (r == 0)
                s->legacy = false;
        return r;
}
