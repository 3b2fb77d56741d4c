/* Strict JSON and the paths errors name; see json-scan.h. json-c parses;
 * a scan over the text it accepted then checks what json-c does not, and
 * knows at each string the path that leads there. */
#include "json-scan.h"

#include <errno.h>
#include <string.h>

#include "util.h"

#define JSON_FLAGS JSON_TOKENER_STRICT

struct scan_frame {
        bool object;
        bool expect_key;
        size_t index;      /* arrays: the current element */
        char *key;         /* objects: the current key, decoded */
        json_object *seen; /* objects: the keys so far, as a set */
};

struct scan {
        const struct json_scan_limits *limits;
        const char *root;
        const char *prefix;
        struct scan_frame *frames; /* limits->max_depth of them */
        size_t depth;
        struct json_tokener *tok; /* decodes keys written with escapes */
};

char *json_scan_path_key(const char *parent, const char *key)
{
        _cleanup_free_ char *q = escape_untrusted(key, JSON_SCAN_QUOTE_MAX);
        return parent[0] ? xasprintf("%s.%s", parent, q) : TAKE_PTR(q);
}

char *json_scan_path_index(const char *parent, size_t i)
{
        return xasprintf("%s[%zu]", parent, i);
}

static void scan_pop(struct scan *sc)
{
        struct scan_frame *f = &sc->frames[--sc->depth];
        free(f->key);
        if (f->seen)
                json_object_put(f->seen);
}

static void scan_done(struct scan *sc)
{
        while (sc->depth > 0)
                scan_pop(sc);
        free(sc->frames);
        if (sc->tok)
                json_tokener_free(sc->tok);
}

/* The path through the outer levels frames (the object being scanned is
 * depth - 1 of them, the value at hand depth), plus key when not NULL. */
static char *scan_path(const struct scan *sc, size_t levels, const char *key)
{
        _cleanup_free_ char *p = xstrdup(sc->prefix);

        for (size_t i = 0; i < levels; i++) {
                const struct scan_frame *f = &sc->frames[i];
                char *n = f->object ? json_scan_path_key(p, f->key ? f->key : "")
                                    : json_scan_path_index(p, f->index);
                free(p);
                p = n;
        }
        if (key) {
                char *n = json_scan_path_key(p, key);
                free(p);
                p = n;
        }
        return p[0] ? TAKE_PTR(p) : xstrdup(sc->root);
}

/* Decodes the quoted key raw[0..n), which json_string_check() has passed:
 * it holds no NUL, which json-c would silently cut the key short at. */
static int scan_decode_key(struct scan *sc, const char *raw, size_t n, char **ret)
{
        if (!memchr(raw, '\\', n)) {
                *ret = xasprintf("%.*s", (int)(n - 2), raw + 1);
                return 0;
        }
        if (!sc->tok) {
                sc->tok = oom_check(json_tokener_new_ex(1));
                json_tokener_set_flags(sc->tok, JSON_FLAGS);
        } else {
                json_tokener_reset(sc->tok);
        }
        _cleanup_json_ json_object *o = json_tokener_parse_ex(sc->tok, raw, (int)n);
        if (!json_object_is_type(o, json_type_string))
                return -EBADMSG;
        *ret = xstrdup(json_object_get_string(o));
        return 0;
}

static int scan_key(struct scan *sc, const char *raw, size_t n, char **err)
{
        struct scan_frame *f = &sc->frames[sc->depth - 1];
        _cleanup_free_ char *key = NULL;

        if (n - 2 > sc->limits->max_key) {
                _cleanup_free_ char *p = scan_path(sc, sc->depth - 1, NULL);
                return fail_with(err, -EBADMSG, "%s: object key longer than %zu bytes", p,
                                 sc->limits->max_key);
        }
        if (scan_decode_key(sc, raw, n, &key) < 0) {
                _cleanup_free_ char *p = scan_path(sc, sc->depth - 1, NULL);
                return fail_with(err, -EBADMSG, "%s: object key cannot be decoded", p);
        }
        if (json_object_object_get_ex(f->seen, key, NULL)) {
                _cleanup_free_ char *p = scan_path(sc, sc->depth - 1, key);
                return fail_with(err, -EBADMSG, "%s: duplicate key", p);
        }
        if (json_object_object_add(f->seen, key, NULL) < 0)
                abort();
        free(f->key);
        f->key = TAKE_PTR(key);
        f->expect_key = false;
        return 0;
}

/* Refuses a string (key or value) that is not strict UTF-8 or holds a NUL,
 * naming its path: a key by itself, as written, a value by where it is. */
static int scan_string(const struct scan *sc, const char *raw, size_t n, bool is_key, char **err)
{
        _cleanup_free_ char *why = NULL;

        if (json_string_check(raw + 1, n - 2, 0, &why) >= 0)
                return 0;
        if (!is_key) {
                _cleanup_free_ char *p = scan_path(sc, sc->depth, NULL);
                return fail_with(err, -EBADMSG, "%s: %s", p, why);
        }
        _cleanup_free_ char *key = xasprintf("%.*s", (int)(n - 2), raw + 1);
        _cleanup_free_ char *p = scan_path(sc, sc->depth - 1, key);
        return fail_with(err, -EBADMSG, "%s: object key %s", p, why);
}

/* The length of the number at s[0..len), which json-c has accepted, or 0
 * when it is not a number as RFC 8259 writes one: json-c also takes a
 * leading zero ("00", "-01", "01.5") and a fraction without digits on one
 * side ("1.", "-.5"), which other parsers refuse or read otherwise. */
static size_t number_length(const char *s, size_t len)
{
        size_t i = 0, digits;
        if (i < len && s[i] == '-')
                i++;
        for (digits = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++)
                if (digits == 1 && s[i - 1] == '0')
                        return 0;
        if (digits == 0)
                return 0;
        if (i < len && s[i] == '.') {
                for (i++, digits = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++)
                        digits++;
                if (digits == 0)
                        return 0;
        }
        if (i < len && (s[i] == 'e' || s[i] == 'E')) {
                i++;
                if (i < len && (s[i] == '+' || s[i] == '-'))
                        i++;
                for (digits = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++)
                        digits++;
                if (digits == 0)
                        return 0;
        }
        return i;
}

/* Runs over text json-c has already accepted; see json_scan_parse(). */
static int scan_text(struct scan *sc, const char *buf, size_t len, char **err)
{
        const char *root = sc->root;

        for (size_t i = 0; i < len; i++) {
                struct scan_frame *top = sc->depth > 0 ? &sc->frames[sc->depth - 1] : NULL;
                switch (buf[i]) {
                case '{':
                case '[':
                        if (sc->depth >= sc->limits->max_depth)
                                return fail_with(err, -EBADMSG, "%s: nested deeper than %zu levels",
                                                 root, sc->limits->max_depth);
                        sc->frames[sc->depth++] = (struct scan_frame){
                            .object = buf[i] == '{',
                            .expect_key = buf[i] == '{',
                            .seen = buf[i] == '{' ? oom_check(json_object_new_object()) : NULL,
                        };
                        break;
                case '}':
                case ']':
                        if (!top)
                                return fail_with(err, -EBADMSG, "%s: invalid JSON at byte %zu",
                                                 root, i);
                        scan_pop(sc);
                        break;
                case ',':
                        if (top && top->object)
                                top->expect_key = true;
                        else if (top)
                                top->index++;
                        break;
                case ':':
                        if (top)
                                top->expect_key = false;
                        break;
                case '\'':
                        return fail_with(err, -EBADMSG,
                                         "%s: invalid JSON at byte %zu: single-quoted string", root,
                                         i);
                case '"': {
                        size_t start = i;
                        for (i++; i < len && buf[i] != '"'; i++) {
                                if (buf[i] == '\\')
                                        i++;
                                else if ((unsigned char)buf[i] < 0x20)
                                        return fail_with(err, -EBADMSG,
                                                         "%s: invalid JSON at byte %zu: control "
                                                         "character in string",
                                                         root, i);
                        }
                        if (i >= len)
                                return fail_with(err, -EBADMSG, "%s: unexpected end of input",
                                                 root);
                        bool is_key = top && top->object && top->expect_key;
                        int r = scan_string(sc, buf + start, i - start + 1, is_key, err);
                        if (r == 0 && is_key)
                                r = scan_key(sc, buf + start, i - start + 1, err);
                        if (r < 0)
                                return r;
                        break;
                }
                case '-':
                case '0' ... '9': {
                        size_t n = number_length(buf + i, len - i);
                        /* "-Infinity": the letters are what is wrong. */
                        if (n == 0 && buf[i] == '-' && i + 1 < len &&
                            !strchr(".0123456789", buf[i + 1]))
                                break;
                        if (n == 0)
                                return fail_with(err, -EBADMSG,
                                                 "%s: invalid JSON at byte %zu: not a number as "
                                                 "JSON writes it",
                                                 root, i);
                        i += n - 1;
                        break;
                }
                default:
                        /* Outside strings only numbers and the literals true,
                         * false and null remain; this refuses NaN and Infinity,
                         * which json-c takes even in strict mode. */
                        if (!strchr(" \t\n\r-+.0123456789eEtruefalsn", buf[i]))
                                return fail_with(err, -EBADMSG,
                                                 "%s: invalid JSON at byte %zu: unexpected "
                                                 "character",
                                                 root, i);
                        break;
                }
        }
        return 0;
}

int json_scan_parse(const char *buf, size_t len, const struct json_scan_limits *limits,
                    const char *root, const char *prefix, json_object **ret, char **ret_error)
{
        if (len > limits->max_bytes)
                return fail_with(ret_error, -EFBIG, "%s: larger than %zu bytes", root,
                                 limits->max_bytes);
        if (memchr(buf, '\0', len))
                return fail_with(ret_error, -EBADMSG, "%s: contains a NUL byte", root);

        /* json-c's depth counts the levels it may enter, one more than may nest. */
        _cleanup_(json_tokener_freep) struct json_tokener *tok =
            oom_check(json_tokener_new_ex((int)limits->max_depth + 1));
        json_tokener_set_flags(tok, JSON_FLAGS);
        _cleanup_json_ json_object *o = json_tokener_parse_ex(tok, buf, (int)len);
        enum json_tokener_error e = json_tokener_get_error(tok);
        size_t end = json_tokener_get_parse_end(tok);
        if (e == json_tokener_continue)
                return fail_with(ret_error, -EBADMSG, "%s: unexpected end of input", root);
        if (e == json_tokener_error_depth)
                return fail_with(ret_error, -EBADMSG, "%s: nested deeper than %zu levels", root,
                                 limits->max_depth);
        if (e != json_tokener_success)
                return fail_with(ret_error, -EBADMSG, "%s: invalid JSON at byte %zu: %s", root, end,
                                 json_tokener_error_desc(e));
        if (end != len)
                return fail_with(ret_error, -EBADMSG, "%s: trailing data at byte %zu", root, end);

        _cleanup_(scan_done) struct scan sc = {
            .limits = limits,
            .root = root,
            .prefix = prefix,
            .frames = xcalloc(limits->max_depth, sizeof(struct scan_frame)),
        };
        int r = scan_text(&sc, buf, len, ret_error);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}
