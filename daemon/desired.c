/* The desired-state document "lii.desired/1": turns untrusted JSON into
 * validated, normalized service specs, and gives every spec a canonical JSON
 * form and its SHA-256, so that "did this service change?" is a comparison
 * of two hashes however the document happened to be written. Nothing here
 * logs or does I/O; errors go back to the caller as "path: reason". */
#include "desired.h"

#include <arpa/inet.h>
#include <assert.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "json-scan.h"

#define CANONICAL_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Strict JSON for the whole document and for each spec_json, so that the
 * bytes that were signed mean one thing only, whichever parser reads them;
 * UTF-8 is checked there instead of by json-c, which lets overlong forms
 * and surrogates through. */
static const struct json_scan_limits json_limits = {
    .max_bytes = DESIRED_MAX_BYTES,
    .max_depth = DESIRED_MAX_DEPTH,
    .max_key = DESIRED_MAX_STRING,
};

static const char *const template_variables[] = {"PORT", "LII_SERVICE", "LII_GENERATION",
                                                 "LII_ARTIFACT_DIR", NULL};
static const char *const artifact_type_names[] = {
    [ARTIFACT_TAR] = "tar", [ARTIFACT_FILE] = "file", NULL};
static const char *const ready_names[] = {
    [READY_STARTED] = "started", [READY_NOTIFY] = "notify", NULL};
static const char *const sandbox_names[] = {
    [SANDBOX_STRICT] = "strict", [SANDBOX_NONE] = "none", NULL};

static int __attribute__((format(printf, 4, 0)))
failv(char **err, int code, const char *path, const char *fmt, va_list ap)
{
        _cleanup_free_ char *reason = NULL;

        assert(err && !*err);
        if (vasprintf(&reason, fmt, ap) < 0)
                abort();
        *err = xasprintf("%s: %s", path, reason);
        return code;
}

static int __attribute__((format(printf, 3, 4)))
fail(char **err, const char *path, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = failv(err, -EINVAL, path, fmt, ap);
        va_end(ap);
        return r;
}

static int __attribute__((format(printf, 4, 5)))
fail_code(char **err, int code, const char *path, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = failv(err, code, path, fmt, ap);
        va_end(ap);
        return r;
}

/* Keys and names that failed validation are chosen by whoever wrote the
 * document, and error messages end up in the journal and in API replies, so
 * they are cut short and anything unprintable is escaped. */
static char *quote(const char *s)
{
        return escape_untrusted(s, JSON_SCAN_QUOTE_MAX);
}

/* Schema helpers. Each takes the full path of the value it looks at. */

/* JSON null counts as present, so that it is refused as the wrong type
 * rather than quietly taken for the default. */
static bool member(json_object *o, const char *key, json_object **ret)
{
        return json_object_object_get_ex(o, key, ret);
}

static int check_object(json_object *o, const char *path, const char *const *keys, char **err)
{
        if (!json_object_is_type(o, json_type_object))
                return fail(err, path, "must be an object");

        struct json_object_iterator it = json_object_iter_begin(o);
        struct json_object_iterator end = json_object_iter_end(o);
        for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
                const char *key = json_object_iter_peek_name(&it);
                if (!strv_contains(keys, key)) {
                        _cleanup_free_ char *p = json_scan_path_key(path, key);
                        return fail(err, p, "unknown key");
                }
        }
        return 0;
}

/* Fails with "path: what" when v is not a string. */
static int get_string(json_object *v, const char *path, const char *what, const char **ret,
                      char **err)
{
        *ret = NULL;
        if (!json_object_is_type(v, json_type_string))
                return fail(err, path, "%s", what);
        /* json_scan_parse() has refused every string with a NUL. */
        if (json_object_get_string_len(v) > DESIRED_MAX_STRING)
                return fail(err, path, "longer than %d bytes", DESIRED_MAX_STRING);
        *ret = json_object_get_string(v);
        return 0;
}

static int get_nonempty_string(json_object *v, const char *path, const char **ret, char **err)
{
        const char *s;
        int r = get_string(v, path, "must be a non-empty string", &s, err);
        if (r < 0)
                return r;
        if (!s[0])
                return fail(err, path, "must be a non-empty string");
        *ret = s;
        return 0;
}

/* json-c clamps integers that overflow 64 bits to UINT64_MAX or INT64_MIN
 * without a word, so max must stay below UINT64_MAX for an overflow to be
 * refused; INT64_MAX also keeps every value writable in the canonical form. */
static bool uint_value(json_object *v, uint64_t min, uint64_t max, uint64_t *ret)
{
        assert(max <= INT64_MAX);
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
                return false;
        uint64_t u = json_object_get_uint64(v);
        if (u < min || u > max)
                return false;
        *ret = u;
        return true;
}

static int get_uint(json_object *v, const char *path, uint64_t min, uint64_t max, uint64_t *ret,
                    char **err)
{
        *ret = 0;
        if (!uint_value(v, min, max, ret))
                return fail(err, path, "must be an integer from %" PRIu64 " to %" PRIu64, min, max);
        return 0;
}

/* names is indexed by the enum value it stands for; every choice in the
 * schema is between two words. */
static int get_choice(json_object *v, const char *path, const char *const names[static 3],
                      unsigned *ret, char **err)
{
        _cleanup_free_ char *what = xasprintf("must be \"%s\" or \"%s\"", names[0], names[1]);
        const char *s;

        assert(!names[2]);
        int r = get_string(v, path, what, &s, err);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < 2; i++)
                if (strcmp(s, names[i]) == 0) {
                        *ret = i;
                        return 0;
                }
        return fail(err, path, "%s", what);
}

static int get_duration(json_object *v, const char *path, bool allow_zero, uint64_t *ret,
                        char **err)
{
        static const char what[] = "must be a duration like \"30s\" or \"250ms\"";
        const char *s;
        uint64_t usec;

        int r = get_string(v, path, what, &s, err);
        if (r < 0)
                return r;
        if (parse_duration(s, &usec) < 0)
                return fail(err, path, "%s", what);
        if (usec == 0 && !allow_zero)
                return fail(err, path, "must be longer than 0s");
        if (usec > DESIRED_MAX_DURATION_USEC)
                return fail(err, path, "must not be longer than %" PRIu64 "s",
                            (uint64_t)(DESIRED_MAX_DURATION_USEC / USEC_PER_SEC));
        *ret = usec;
        return 0;
}

/* Templates are expanded later by expand_template(), which cannot fail:
 * this is where a misspelt variable is caught, while a human still reads
 * the error. */
static int check_template(const char *s, const char *path, char **err)
{
        for (const char *p = strstr(s, "${"); p; p = strstr(p, "${")) {
                const char *end = strchr(p + 2, '}');
                if (!end)
                        return fail(err, path, "unterminated variable reference");
                _cleanup_free_ char *name = xasprintf("%.*s", (int)(end - p - 2), p + 2);
                if (!strv_contains(template_variables, name)) {
                        _cleanup_free_ char *q = quote(name);
                        return fail(err, path, "unknown variable ${%s}", q);
                }
                p = end + 1;
        }
        return 0;
}

/* Resolves url against base (when not NULL) with curl's own URL parser, the
 * one that will fetch it, and returns curl's normalized form. */
static int resolve_url(const char *base, const char *url, const char *path, char **ret, char **err)
{
        _cleanup_(curl_url_cleanupp) CURLU *h = oom_check(curl_url());
        _cleanup_(curl_freep) char *scheme = NULL;
        _cleanup_(curl_freep) char *out = NULL;

        /* A key in etcd is no place an artifact can be fetched from
         * relative to. */
        if (base && (strncmp(base, "etcd://", 7) == 0 || strncmp(base, "etcds://", 8) == 0)) {
                if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK)
                        return fail(err, path, "must be absolute in a document from etcd");
                base = NULL;
        }
        if (base && curl_url_set(h, CURLUPART_URL, base, 0) != CURLUE_OK)
                return fail(err, path, "the document URL is not a valid base URL");
        if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK)
                return fail(err, path, base ? "not a valid URL" : "not a valid absolute URL");
        if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(h, CURLUPART_URL, &out, 0) != CURLUE_OK)
                return fail(err, path, "not a valid URL");
        if (!strv_contains((const char *const[]){"file", "http", "https", NULL}, scheme)) {
                _cleanup_free_ char *q = quote(scheme);
                return fail(err, path, "unsupported URL scheme \"%s\" (want file, http or https)",
                            q);
        }
        /* The normal form goes into spec_json, which is read back from the
         * state file with no base: it must read back as itself, or the spec
         * would change under a restart. curl 7.88 writes "file://(nil)"
         * for a file:// URL of the root folder ("file:///", and so
         * "file:///srv/.."), which it cannot read back. */
        _cleanup_(curl_url_cleanupp) CURLU *again = oom_check(curl_url());
        _cleanup_(curl_freep) char *out_again = NULL;
        if (curl_url_set(again, CURLUPART_URL, out, 0) != CURLUE_OK ||
            curl_url_get(again, CURLUPART_URL, &out_again, 0) != CURLUE_OK ||
            strcmp(out, out_again) != 0)
                return fail(err, path, "not a valid URL");
        *ret = xstrdup(out);
        return 0;
}

/* The service entry, piece by piece. */

static int parse_artifact(json_object *o, const char *path, const char *base_url,
                          struct service_spec *s, char **err)
{
        static const char *const keys[] = {"url", "sha256", "size", "signature", "type", NULL};
        _cleanup_free_ char *p_url = json_scan_path_key(path, "url");
        _cleanup_free_ char *p_sha = json_scan_path_key(path, "sha256");
        _cleanup_free_ char *p_size = json_scan_path_key(path, "size");
        _cleanup_free_ char *p_sig = json_scan_path_key(path, "signature");
        _cleanup_free_ char *p_type = json_scan_path_key(path, "type");
        json_object *v;
        const char *str = NULL;
        int r;

        r = check_object(o, path, keys, err);
        if (r < 0)
                return r;

        if (!member(o, "url", &v))
                return fail(err, p_url, "required");
        r = get_nonempty_string(v, p_url, &str, err);
        if (r < 0)
                return r;
        r = resolve_url(base_url, str, p_url, &s->artifact_url, err);
        if (r < 0)
                return r;

        if (!member(o, "sha256", &v))
                return fail(err, p_sha, "required");
        r = get_string(v, p_sha, "not 64 hex digits", &str, err);
        if (r < 0)
                return r;
        if (!is_hex_string(str, SHA256_HEX_LEN)) {
                _cleanup_free_ char *lower = xstrdup(str);
                for (char *c = lower; *c; c++)
                        if (*c >= 'A' && *c <= 'F')
                                *c = (char)(*c - 'A' + 'a');
                return fail(err, p_sha,
                            is_hex_string(lower, SHA256_HEX_LEN) ? "not lower-case hex"
                                                                 : "not 64 hex digits");
        }
        memcpy(s->artifact_sha256, str, sizeof s->artifact_sha256);

        if (!member(o, "size", &v))
                return fail(err, p_size, "required");
        r = get_uint(v, p_size, 1, INT64_MAX, &s->artifact_size, err);
        if (r < 0)
                return r;

        /* The default goes through curl too, so that it reads the same
         * whether it was spelt out or left to the default. */
        _cleanup_free_ char *sig_default = xasprintf("%s.minisig", s->artifact_url);
        if (member(o, "signature", &v)) {
                r = get_nonempty_string(v, p_sig, &str, err);
                if (r < 0)
                        return r;
        } else
                str = sig_default;
        r = resolve_url(base_url, str, p_sig, &s->signature_url, err);
        if (r < 0)
                return r;

        if (member(o, "type", &v)) {
                unsigned t;
                r = get_choice(v, p_type, artifact_type_names, &t, err);
                if (r < 0)
                        return r;
                s->artifact_type = (enum artifact_type)t;
        }
        return 0;
}

static int parse_argv(json_object *v, const char *path, char ***ret, char **err)
{
        if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0)
                return fail(err, path, "must be a non-empty array of strings");
        size_t n = json_object_array_length(v);
        if (n > DESIRED_MAX_ARGS)
                return fail(err, path, "more than %d arguments", DESIRED_MAX_ARGS);

        _cleanup_strv_free_ char **argv = xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *p = json_scan_path_index(path, i);
                const char *a;
                int r = get_string(json_object_array_get_idx(v, i), p, "must be a string", &a, err);
                if (r < 0)
                        return r;
                r = check_template(a, p, err);
                if (r < 0)
                        return r;
                argv[i] = xstrdup(a);
        }
        *ret = TAKE_PTR(argv);
        return 0;
}

/* exec[0] is looked up under the unpacked artifact, which must contain it:
 * no way out by an absolute path, "..", or a variable that expands to one. */
static int check_exec_path(const char *s, const char *path, char **err)
{
        if (!s[0])
                return fail(err, path, "must be a non-empty string");
        if (s[0] == '/')
                return fail(err, path, "must be a path relative to the artifact root");
        if (strstr(s, "${"))
                return fail(err, path, "must not contain variables");
        for (const char *c = s; *c;) {
                size_t n = strcspn(c, "/");
                if (n == 2 && c[0] == '.' && c[1] == '.')
                        return fail(err, path, "must not contain \"..\" components");
                c += n;
                c += *c == '/';
        }
        return 0;
}

static bool env_name_is_valid(const char *s)
{
        if (!(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
                return false;
        for (const char *c = s + 1; *c; c++)
                if (!(*c == '_' || (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
                      (*c >= '0' && *c <= '9')))
                        return false;
        return true;
}

/* Orders "KEY=value" strings by KEY alone: plain strcmp() would put "A1=" before
 * "A=", as '1' sorts before '='. */
static int env_compare(const void *a, const void *b)
{
        const char *x = *(char *const *)a, *y = *(char *const *)b;
        size_t nx = strcspn(x, "="), ny = strcspn(y, "=");
        int c = memcmp(x, y, nx < ny ? nx : ny);
        if (c != 0)
                return c;
        return nx < ny ? -1 : nx > ny;
}

static int parse_env(json_object *o, const char *path, char ***ret, char **err)
{
        if (!json_object_is_type(o, json_type_object))
                return fail(err, path, "must be an object of strings");
        size_t n = (size_t)json_object_object_length(o);
        if (n > DESIRED_MAX_ENV)
                return fail(err, path, "more than %d entries", DESIRED_MAX_ENV);

        _cleanup_strv_free_ char **env = xcalloc(n + 1, sizeof(char *));
        size_t i = 0;
        struct json_object_iterator it = json_object_iter_begin(o);
        struct json_object_iterator end = json_object_iter_end(o);
        for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it), i++) {
                const char *key = json_object_iter_peek_name(&it);
                if (!env_name_is_valid(key)) {
                        _cleanup_free_ char *p = json_scan_path_key(path, key);
                        return fail(err, p, "invalid variable name (want [A-Za-z_][A-Za-z0-9_]*)");
                }
                _cleanup_free_ char *p = json_scan_path_key(path, key);
                const char *value;
                int r = get_string(json_object_iter_peek_value(&it), p, "must be a string", &value,
                                   err);
                if (r < 0)
                        return r;
                r = check_template(value, p, err);
                if (r < 0)
                        return r;
                env[i] = xasprintf("%s=%s", key, value);
        }
        qsort(env, n, sizeof(char *), env_compare);
        *ret = TAKE_PTR(env);
        return 0;
}

static int check_tcp_target(const char *s, const char *path, char **err)
{
        static const char what[] = "must be \"host:port\" with a port from 1 to 65535";
        const char *colon = strrchr(s, ':');

        if (!colon || colon == s || !colon[1])
                return fail(err, path, "%s", what);
        /* A templated port is checked when it is expanded into a number. */
        if (strchr(colon + 1, '$'))
                return 0;
        unsigned long port = 0;
        for (const char *c = colon + 1; *c; c++) {
                if (*c < '0' || *c > '9' || port > 65535)
                        return fail(err, path, "%s", what);
                port = port * 10 + (unsigned long)(*c - '0');
        }
        if (port < 1 || port > 65535)
                return fail(err, path, "%s", what);
        return 0;
}

/* "IPv4:port" or "[IPv6]:port", port 1 to 65535, into its normal form
 * (inet_ntop's text), so that two spellings of one address compare equal. */
static int parse_listen_address(const char *s, const char *path,
                                char ret[static LISTEN_ADDRESS_MAX], char **err)
{
        static const char what[] =
            "must be \"IPv4:port\" or \"[IPv6]:port\" with a port from 1 to 65535";
        const char *colon = strrchr(s, ':');
        if (!colon || colon == s || !colon[1] || strlen(colon + 1) > 5 ||
            strspn(colon + 1, "0123456789") != strlen(colon + 1))
                return fail(err, path, "%s", what);
        unsigned long port = strtoul(colon + 1, NULL, 10);
        if (port < 1 || port > 65535)
                return fail(err, path, "%s", what);
        char host[INET6_ADDRSTRLEN + 2];
        size_t n = (size_t)(colon - s);
        if (n >= sizeof host)
                return fail(err, path, "%s", what);
        memcpy(host, s, n);
        host[n] = '\0';
        char text[INET6_ADDRSTRLEN];
        unsigned char addr[sizeof(struct in6_addr)];
        if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
                host[n - 1] = '\0';
                if (inet_pton(AF_INET6, host + 1, addr) != 1 ||
                    !inet_ntop(AF_INET6, addr, text, sizeof text))
                        return fail(err, path, "%s", what);
                snprintf(ret, LISTEN_ADDRESS_MAX, "[%s]:%lu", text, port);
                return 0;
        }
        if (inet_pton(AF_INET, host, addr) != 1 || !inet_ntop(AF_INET, addr, text, sizeof text))
                return fail(err, path, "%s", what);
        snprintf(ret, LISTEN_ADDRESS_MAX, "%s:%lu", text, port);
        return 0;
}

static int parse_listen(json_object *v, const char *path, char ***ret, char **err)
{
        if (!json_object_is_type(v, json_type_array))
                return fail(err, path, "must be an array of addresses");
        size_t n = json_object_array_length(v);
        if (n == 0)
                return fail(err, path, "must list at least one address (or be left out)");
        if (n > DESIRED_MAX_LISTEN)
                return fail(err, path, "more than %d addresses", DESIRED_MAX_LISTEN);
        _cleanup_strv_free_ char **list = xcalloc(n + 1, sizeof *list);
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *p = json_scan_path_index(path, i);
                const char *s;
                char norm[LISTEN_ADDRESS_MAX];
                int r = get_string(json_object_array_get_idx(v, i), p, "must be a string", &s, err);
                if (r < 0)
                        return r;
                r = parse_listen_address(s, p, norm, err);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < i; j++)
                        if (strcmp(list[j], norm) == 0)
                                return fail(err, p, "%s is listed twice", norm);
                list[i] = xstrdup(norm);
        }
        *ret = TAKE_PTR(list);
        return 0;
}

static int parse_health(json_object *o, const char *path, struct health_spec *h, char **err)
{
        static const char *const keys[] = {"http",   "tcp",      "exec",  "interval", "timeout",
                                           "passes", "deadline", "watch", NULL};
        _cleanup_free_ char *p_http = json_scan_path_key(path, "http");
        _cleanup_free_ char *p_tcp = json_scan_path_key(path, "tcp");
        _cleanup_free_ char *p_exec = json_scan_path_key(path, "exec");
        json_object *v;
        const char *str = NULL;
        uint64_t u;
        int r;

        r = check_object(o, path, keys, err);
        if (r < 0)
                return r;
        if (member(o, "http", NULL) + member(o, "tcp", NULL) + member(o, "exec", NULL) != 1)
                return fail(err, path, "exactly one of http, tcp, exec is required");

        if (member(o, "http", &v)) {
                r = get_nonempty_string(v, p_http, &str, err);
                if (r < 0)
                        return r;
                if (strncmp(str, "http://", 7) != 0 && strncmp(str, "https://", 8) != 0)
                        return fail(err, p_http, "must be an http:// or https:// URL");
                r = check_template(str, p_http, err);
                if (r < 0)
                        return r;
                h->kind = HEALTH_HTTP;
                h->target = xstrdup(str);
        } else if (member(o, "tcp", &v)) {
                r = get_nonempty_string(v, p_tcp, &str, err);
                if (r < 0)
                        return r;
                r = check_template(str, p_tcp, err);
                if (r < 0)
                        return r;
                r = check_tcp_target(str, p_tcp, err);
                if (r < 0)
                        return r;
                h->kind = HEALTH_TCP;
                h->target = xstrdup(str);
        } else {
                member(o, "exec", &v);
                r = parse_argv(v, p_exec, &h->exec_argv, err);
                if (r < 0)
                        return r;
                h->kind = HEALTH_EXEC;
        }

        const struct {
                const char *key;
                bool allow_zero;
                uint64_t *value;
        } durations[] = {
            {"interval", false, &h->interval_usec},
            {"timeout", false, &h->timeout_usec},
            {"deadline", false, &h->deadline_usec},
            {"watch", true, &h->watch_usec},
        };
        for (size_t i = 0; i < ELEMENTSOF(durations); i++) {
                if (!member(o, durations[i].key, &v))
                        continue;
                _cleanup_free_ char *p = json_scan_path_key(path, durations[i].key);
                r = get_duration(v, p, durations[i].allow_zero, durations[i].value, err);
                if (r < 0)
                        return r;
        }

        if (member(o, "passes", &v)) {
                _cleanup_free_ char *p = json_scan_path_key(path, "passes");
                r = get_uint(v, p, 1, DESIRED_MAX_HEALTH_PASSES, &u, err);
                if (r < 0)
                        return r;
                h->passes = (unsigned)u;
        }
        return 0;
}

static int parse_limits(json_object *o, const char *path, struct service_spec *s, char **err)
{
        static const char *const keys[] = {"memory", "cpu", "tasks", NULL};
        json_object *v;
        int r;

        r = check_object(o, path, keys, err);
        if (r < 0)
                return r;

        if (member(o, "memory", &v)) {
                static const char what[] = "must be a size like \"256M\" or a number of bytes";
                _cleanup_free_ char *p = json_scan_path_key(path, "memory");
                uint64_t bytes;
                const char *str = NULL;
                if (json_object_is_type(v, json_type_int)) {
                        if (!uint_value(v, 1, INT64_MAX, &bytes))
                                return fail(err, p, "%s, larger than 0", what);
                } else {
                        r = get_string(v, p, what, &str, err);
                        if (r < 0)
                                return r;
                        if (parse_size(str, &bytes) < 0)
                                return fail(err, p, "%s", what);
                        if (bytes == 0 || bytes > INT64_MAX)
                                return fail(err, p, "%s, larger than 0", what);
                }
                s->memory_max = bytes;
        }

        if (member(o, "cpu", &v)) {
                _cleanup_free_ char *p = json_scan_path_key(path, "cpu");
                _cleanup_free_ char *what = xasprintf(
                    "must be a percentage like \"50%%\" from 1%% to %d%%", DESIRED_MAX_CPU_PERCENT);
                const char *str = NULL;
                unsigned long pct = 0;
                r = get_string(v, p, what, &str, err);
                if (r < 0)
                        return r;
                const char *c = str;
                for (; *c >= '0' && *c <= '9' && pct <= DESIRED_MAX_CPU_PERCENT; c++)
                        pct = pct * 10 + (unsigned long)(*c - '0');
                if (c == str || strcmp(c, "%") != 0 || pct < 1 || pct > DESIRED_MAX_CPU_PERCENT)
                        return fail(err, p, "%s", what);
                s->cpu_percent = (unsigned)pct;
        }

        if (member(o, "tasks", &v)) {
                _cleanup_free_ char *p = json_scan_path_key(path, "tasks");
                r = get_uint(v, p, 1, DESIRED_MAX_TASKS, &s->tasks_max, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Canonical form. */

static json_object *jstr(const char *s)
{
        return oom_check(json_object_new_string(s));
}

static json_object *jint(uint64_t v)
{
        assert(v <= INT64_MAX);
        return oom_check(json_object_new_int64((int64_t)v));
}

static json_object *jduration(uint64_t usec)
{
        char buf[32];
        /* parse_duration() reads milliseconds at the finest, so every value
         * it produced is a whole number of one or the other. */
        if (usec % USEC_PER_SEC == 0)
                snprintf(buf, sizeof buf, "%" PRIu64 "s", (uint64_t)(usec / USEC_PER_SEC));
        else
                snprintf(buf, sizeof buf, "%" PRIu64 "ms", (uint64_t)(usec / USEC_PER_MSEC));
        return jstr(buf);
}

static json_object *jstrv(char *const *v)
{
        json_object *a = oom_check(json_object_new_array());
        for (; v && *v; v++)
                if (json_object_array_add(a, jstr(*v)) < 0)
                        abort();
        return a;
}

/* Keys must be added in sorted order: json-c writes them in insertion order. */
static void jadd(json_object *o, const char *key, json_object *v)
{
        if (json_object_object_add(o, key, v) < 0)
                abort();
}

static char *service_canonical_json(const struct service_spec *s)
{
        _cleanup_json_ json_object *root = oom_check(json_object_new_object());
        json_object *artifact = oom_check(json_object_new_object());
        json_object *env = oom_check(json_object_new_object());
        json_object *limits = oom_check(json_object_new_object());

        jadd(artifact, "sha256", jstr(s->artifact_sha256));
        jadd(artifact, "signature", jstr(s->signature_url));
        jadd(artifact, "size", jint(s->artifact_size));
        jadd(artifact, "type", jstr(artifact_type_names[s->artifact_type]));
        jadd(artifact, "url", jstr(s->artifact_url));
        jadd(root, "artifact", artifact);

        /* s->env is sorted by key already. */
        for (char **e = s->env; e && *e; e++) {
                size_t n = strcspn(*e, "=");
                _cleanup_free_ char *key = xasprintf("%.*s", (int)n, *e);
                jadd(env, key, jstr(*e + n + 1));
        }
        jadd(root, "env", env);
        jadd(root, "exec", jstrv(s->exec));

        if (s->health.kind != HEALTH_NONE) {
                const struct health_spec *h = &s->health;
                json_object *health = oom_check(json_object_new_object());
                jadd(health, "deadline", jduration(h->deadline_usec));
                if (h->kind == HEALTH_EXEC)
                        jadd(health, "exec", jstrv(h->exec_argv));
                if (h->kind == HEALTH_HTTP)
                        jadd(health, "http", jstr(h->target));
                jadd(health, "interval", jduration(h->interval_usec));
                jadd(health, "passes", jint(h->passes));
                if (h->kind == HEALTH_TCP)
                        jadd(health, "tcp", jstr(h->target));
                jadd(health, "timeout", jduration(h->timeout_usec));
                jadd(health, "watch", jduration(h->watch_usec));
                jadd(root, "health", health);
        }

        if (s->cpu_percent > 0) {
                char buf[16];
                snprintf(buf, sizeof buf, "%u%%", s->cpu_percent);
                jadd(limits, "cpu", jstr(buf));
        }
        if (s->memory_max > 0)
                jadd(limits, "memory", jint(s->memory_max));
        if (s->tasks_max > 0)
                jadd(limits, "tasks", jint(s->tasks_max));
        jadd(root, "limits", limits);

        /* Only when there is one, so that the specs written before listen
         * existed keep their hashes. */
        if (s->listen)
                jadd(root, "listen", jstrv(s->listen));
        jadd(root, "port", s->port == 0 ? jstr("auto") : jint((uint64_t)s->port));
        jadd(root, "ready", jstr(ready_names[s->ready]));
        jadd(root, "sandbox", jstr(sandbox_names[s->sandbox]));
        jadd(root, "stop_timeout", jduration(s->stop_timeout_usec));

        const char *json = json_object_to_json_string_ext(root, CANONICAL_FLAGS);
        if (!json)
                abort();
        return xstrdup(json);
}

static bool rollout_id_is_valid(const char *s)
{
        size_t n = strlen(s);
        return n >= 1 && n <= ROLLOUT_ID_MAX &&
               strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
                   n &&
               strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* A percentage from 0 to 100 with at most two decimals, as hundredths. */
static int get_percent(json_object *v, const char *path, unsigned *ret, char **err)
{
        static const char what[] = "must be a number from 0 to 100 with at most two decimals";
        double d;
        if (json_object_is_type(v, json_type_int)) {
                if (json_object_get_int64(v) < 0 || json_object_get_int64(v) > 100)
                        return fail(err, path, "%s", what);
                *ret = (unsigned)json_object_get_int64(v) * 100;
                return 0;
        }
        if (!json_object_is_type(v, json_type_double))
                return fail(err, path, "%s", what);
        d = json_object_get_double(v);
        if (!(d >= 0 && d <= 100))
                return fail(err, path, "%s", what);
        double h = d * 100;
        double rounded = (double)(unsigned)(h + 0.5);
        if (h - rounded > 1e-6 || rounded - h > 1e-6)
                return fail(err, path, "%s", what);
        *ret = (unsigned)rounded;
        return 0;
}

static int parse_rollout(json_object *o, const char *path, struct rollout_policy *ret, char **err)
{
        static const char *const keys[] = {"id", "percent", "max_parallel", "max_failures", NULL};
        struct rollout_policy p = {.set = true, .percent_hundredths = 10000};
        json_object *v;
        uint64_t u;
        int r = check_object(o, path, keys, err);
        if (r < 0)
                return r;

        _cleanup_free_ char *p_id = json_scan_path_key(path, "id");
        const char *id = NULL;
        if (!member(o, "id", &v))
                return fail(err, p_id, "required");
        r = get_nonempty_string(v, p_id, &id, err);
        if (r < 0)
                return r;
        if (!rollout_id_is_valid(id))
                return fail(err, p_id, "must be 1 to %d of A-Z a-z 0-9 . _ - (it names etcd keys)",
                            ROLLOUT_ID_MAX);
        memcpy(p.id, id, strlen(id) + 1);

        if (member(o, "percent", &v)) {
                _cleanup_free_ char *pp = json_scan_path_key(path, "percent");
                r = get_percent(v, pp, &p.percent_hundredths, err);
                if (r < 0)
                        return r;
        }
        if (member(o, "max_parallel", &v)) {
                _cleanup_free_ char *pp = json_scan_path_key(path, "max_parallel");
                r = get_uint(v, pp, 1, ROLLOUT_MAX_PARALLEL_MAX, &u, err);
                if (r < 0)
                        return r;
                p.max_parallel = (unsigned)u;
        }
        if (member(o, "max_failures", &v)) {
                _cleanup_free_ char *pp = json_scan_path_key(path, "max_failures");
                r = get_uint(v, pp, 1, ROLLOUT_MAX_FAILURES_MAX, &u, err);
                if (r < 0)
                        return r;
                p.max_failures = (unsigned)u;
        }
        *ret = p;
        return 0;
}

static int service_parse_json(json_object *o, const char *name, const char *path,
                              const char *base_url, struct service_spec *ret, char **err)
{
        static const char *const keys[] = {"artifact",     "exec",    "env",     "port",
                                           "listen",       "ready",   "health",  "limits",
                                           "stop_timeout", "sandbox", "rollout", NULL};
        _cleanup_(service_spec_done) struct service_spec s = {
            .name = xstrdup(name),
            .artifact_type = ARTIFACT_TAR,
            .port = 0,
            .ready = READY_STARTED,
            /* The health defaults are there even without a check, so that
             * a spec reads the same however it was made. */
            .health =
                {
                    .kind = HEALTH_NONE,
                    .interval_usec = 1 * USEC_PER_SEC,
                    .timeout_usec = 2 * USEC_PER_SEC,
                    .deadline_usec = 60 * USEC_PER_SEC,
                    .watch_usec = 0,
                    .passes = 1,
                },
            .stop_timeout_usec = 30 * USEC_PER_SEC,
            .sandbox = SANDBOX_STRICT,
        };
        json_object *v;
        unsigned choice;
        int r;

        r = check_object(o, path, keys, err);
        if (r < 0)
                return r;

        _cleanup_free_ char *p_artifact = json_scan_path_key(path, "artifact");
        if (!member(o, "artifact", &v))
                return fail(err, p_artifact, "required");
        r = parse_artifact(v, p_artifact, base_url, &s, err);
        if (r < 0)
                return r;

        _cleanup_free_ char *p_exec = json_scan_path_key(path, "exec");
        if (!member(o, "exec", &v))
                return fail(err, p_exec, "required");
        r = parse_argv(v, p_exec, &s.exec, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *p_exec0 = json_scan_path_index(p_exec, 0);
        r = check_exec_path(s.exec[0], p_exec0, err);
        if (r < 0)
                return r;

        _cleanup_free_ char *p_env = json_scan_path_key(path, "env");
        if (member(o, "env", &v))
                r = parse_env(v, p_env, &s.env, err);
        else {
                s.env = xcalloc(1, sizeof(char *));
                r = 0;
        }
        if (r < 0)
                return r;

        if (member(o, "port", &v)) {
                static const char what[] = "must be \"auto\" or an integer from 1 to 65535";
                _cleanup_free_ char *p = json_scan_path_key(path, "port");
                uint64_t port;
                const char *str = NULL;
                if (json_object_is_type(v, json_type_string)) {
                        r = get_string(v, p, what, &str, err);
                        if (r < 0)
                                return r;
                        if (strcmp(str, "auto") != 0)
                                return fail(err, p, "%s", what);
                } else if (uint_value(v, 1, 65535, &port))
                        s.port = (int)port;
                else
                        return fail(err, p, "%s", what);
        }

        if (member(o, "listen", &v)) {
                _cleanup_free_ char *p = json_scan_path_key(path, "listen");
                r = parse_listen(v, p, &s.listen, err);
                if (r < 0)
                        return r;
                /* ${PORT} is each generation's own probe port. */
                if (s.port != 0) {
                        _cleanup_free_ char *pp = json_scan_path_key(path, "port");
                        return fail(err, pp,
                                    "must be \"auto\" with listen (each generation gets a probe "
                                    "port of its own)");
                }
        }

        if (member(o, "ready", &v)) {
                _cleanup_free_ char *p = json_scan_path_key(path, "ready");
                r = get_choice(v, p, ready_names, &choice, err);
                if (r < 0)
                        return r;
                s.ready = (enum ready_kind)choice;
        }

        if (member(o, "health", &v)) {
                _cleanup_free_ char *p = json_scan_path_key(path, "health");
                r = parse_health(v, p, &s.health, err);
                if (r < 0)
                        return r;
        }

        if (member(o, "stop_timeout", &v)) {
                _cleanup_free_ char *p = json_scan_path_key(path, "stop_timeout");
                r = get_duration(v, p, false, &s.stop_timeout_usec, err);
                if (r < 0)
                        return r;
        }

        if (member(o, "limits", &v)) {
                _cleanup_free_ char *p = json_scan_path_key(path, "limits");
                r = parse_limits(v, p, &s, err);
                if (r < 0)
                        return r;
        }

        if (member(o, "sandbox", &v)) {
                _cleanup_free_ char *p = json_scan_path_key(path, "sandbox");
                r = get_choice(v, p, sandbox_names, &choice, err);
                if (r < 0)
                        return r;
                s.sandbox = (enum sandbox_kind)choice;
        }

        /* Left out of spec_json: how the fleet takes a spec is not the
         * spec. A stored spec_json therefore never has one. */
        if (member(o, "rollout", &v)) {
                _cleanup_free_ char *p = json_scan_path_key(path, "rollout");
                r = parse_rollout(v, p, &s.rollout, err);
                if (r < 0)
                        return r;
        }

        s.spec_json = service_canonical_json(&s);
        r = sha256_hex_of(s.spec_json, strlen(s.spec_json), s.spec_sha256);
        if (r < 0)
                return fail_code(err, r, path, "cannot compute SHA-256");

        *ret = s;
        s = (struct service_spec){};
        return 0;
}

static int service_compare(const void *a, const void *b)
{
        return strcmp(((const struct service_spec *)a)->name,
                      ((const struct service_spec *)b)->name);
}

/* One address belongs to one service: two services' generations would
 * share its connections. */
static int check_listen_unique(const struct desired *d, char **err)
{
        for (size_t a = 0; a < d->n_services; a++)
                for (char **x = d->services[a].listen; x && *x; x++)
                        for (size_t b = a + 1; b < d->n_services; b++)
                                for (char **y = d->services[b].listen; y && *y; y++) {
                                        if (strcmp(*x, *y) != 0)
                                                continue;
                                        _cleanup_free_ char *p =
                                            json_scan_path_key("services", d->services[b].name);
                                        _cleanup_free_ char *pl = json_scan_path_key(p, "listen");
                                        _cleanup_free_ char *pi = json_scan_path_index(
                                            pl, (size_t)(y - d->services[b].listen));
                                        return fail(err, pi, "%s is listed by services.%s too", *y,
                                                    d->services[a].name);
                                }
        return 0;
}

static int parse_services(json_object *o, const char *base_url, struct desired *d, char **err)
{
        if (!json_object_is_type(o, json_type_object))
                return fail(err, "services", "must be an object");
        size_t n = (size_t)json_object_object_length(o);
        if (n > DESIRED_MAX_SERVICES)
                return fail(err, "services", "more than %d services", DESIRED_MAX_SERVICES);

        d->services = xcalloc(n, sizeof(struct service_spec));
        struct json_object_iterator it = json_object_iter_begin(o);
        struct json_object_iterator end = json_object_iter_end(o);
        for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
                const char *name = json_object_iter_peek_name(&it);
                _cleanup_free_ char *p = json_scan_path_key("services", name);
                if (!service_name_is_valid(name))
                        return fail(err, p, "invalid service name (want [a-z0-9][a-z0-9-]{0,47})");
                /* Instances keep their data in StateDirectory=lii/<service>,
                 * beside lii's own store in the default state folder: a
                 * service of that name would be handed the store. */
                if (strcmp(name, DESIRED_RESERVED_NAME) == 0)
                        return fail(err, p,
                                    "reserved name (lii keeps its artifact store under it)");
                int r = service_parse_json(json_object_iter_peek_value(&it), name, p, base_url,
                                           &d->services[d->n_services], err);
                if (r < 0)
                        return r;
                d->n_services++;
        }
        qsort(d->services, d->n_services, sizeof(struct service_spec), service_compare);
        return check_listen_unique(d, err);
}

static int desired_parse_json(json_object *root, const char *base_url, struct desired *d,
                              char **err)
{
        static const char *const keys[] = {"format", "serial", "expires", "services", NULL};
        json_object *v;
        const char *str = NULL;
        int r;

        if (!json_object_is_type(root, json_type_object))
                return fail(err, "document", "must be an object");
        r = check_object(root, "", keys, err);
        if (r < 0)
                return r;

        if (!member(root, "format", &v))
                return fail(err, "format", "required");
        r = get_string(v, "format", "expected \"" DESIRED_FORMAT "\"", &str, err);
        if (r < 0)
                return r;
        if (strcmp(str, DESIRED_FORMAT) != 0)
                return fail(err, "format", "expected \"" DESIRED_FORMAT "\"");

        if (!member(root, "serial", &v))
                return fail(err, "serial", "required");
        r = get_uint(v, "serial", 0, INT64_MAX, &d->serial, err);
        if (r < 0)
                return r;

        if (member(root, "expires", &v)) {
                static const char what[] = "must be an RFC 3339 time like \"2026-12-31T00:00:00Z\"";
                r = get_string(v, "expires", what, &str, err);
                if (r < 0)
                        return r;
                if (parse_rfc3339(str, &d->expires_usec) < 0)
                        return fail(err, "expires", "%s", what);
                /* 0 stands for "absent" in struct desired. */
                if (d->expires_usec == 0)
                        return fail(err, "expires", "must be after 1970-01-01T00:00:00Z");
        }

        if (!member(root, "services", &v))
                return fail(err, "services", "required");
        return parse_services(v, base_url, d, err);
}

int desired_parse(const char *buf, size_t len, const char *base_url, struct desired **ret,
                  char **ret_error)
{
        _cleanup_free_ char *error = NULL;
        _cleanup_json_ json_object *root = NULL;
        _cleanup_(desired_freep) struct desired *d = NULL;
        int r;

        assert(buf || len == 0);
        assert(ret);
        assert(ret_error);

        r = json_scan_parse(buf ? buf : "", len, &json_limits, "document", "", &root, &error);
        if (r < 0) {
                *ret_error = TAKE_PTR(error);
                return r;
        }
        d = xcalloc(1, sizeof(*d));
        r = desired_parse_json(root, base_url, d, &error);
        if (r < 0) {
                *ret_error = TAKE_PTR(error);
                return r;
        }
        *ret = TAKE_PTR(d);
        return 0;
}

int desired_peek_serial(const char *buf, size_t len, uint64_t *ret_serial)
{
        _cleanup_free_ char *error = NULL;
        _cleanup_json_ json_object *root = NULL;
        json_object *v;
        if (json_scan_parse(buf ? buf : "", len, &json_limits, "document", "", &root, &error) < 0 ||
            !json_object_is_type(root, json_type_object) || !member(root, "serial", &v) ||
            !uint_value(v, 0, INT64_MAX, ret_serial))
                return -ENODATA;
        return 0;
}

int service_spec_parse(const char *name, const char *spec_json, struct service_spec **ret,
                       char **ret_error)
{
        _cleanup_free_ char *error = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_json_ json_object *root = NULL;
        _cleanup_(service_spec_freep) struct service_spec *s = NULL;
        int r;

        assert(name && spec_json && ret && ret_error);

        path = json_scan_path_key("services", name);
        if (!service_name_is_valid(name)) {
                *ret_error =
                    xasprintf("%s: invalid service name (want [a-z0-9][a-z0-9-]{0,47})", path);
                return -EINVAL;
        }
        r = json_scan_parse(spec_json, strlen(spec_json), &json_limits, path, path, &root, &error);
        if (r < 0) {
                *ret_error = TAKE_PTR(error);
                return r;
        }
        s = xcalloc(1, sizeof(*s));
        r = service_parse_json(root, name, path, NULL, s, &error);
        if (r < 0) {
                *ret_error = TAKE_PTR(error);
                return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

static int service_name_compare(const void *key, const void *elem)
{
        return strcmp(key, ((const struct service_spec *)elem)->name);
}

const struct service_spec *desired_find(const struct desired *d, const char *name)
{
        if (!d || !name || d->n_services == 0)
                return NULL;
        return bsearch(name, d->services, d->n_services, sizeof(struct service_spec),
                       service_name_compare);
}

void service_spec_done(struct service_spec *s)
{
        if (!s)
                return;
        free(s->name);
        free(s->artifact_url);
        free(s->signature_url);
        strv_free(s->exec);
        strv_free(s->env);
        strv_free(s->listen);
        free(s->health.target);
        strv_free(s->health.exec_argv);
        free(s->spec_json);
        *s = (struct service_spec){};
}

struct service_spec *service_spec_free(struct service_spec *s)
{
        service_spec_done(s);
        free(s);
        return NULL;
}

struct desired *desired_free(struct desired *d)
{
        if (!d)
                return NULL;
        for (size_t i = 0; i < d->n_services; i++)
                service_spec_done(&d->services[i]);
        free(d->services);
        free(d);
        return NULL;
}
