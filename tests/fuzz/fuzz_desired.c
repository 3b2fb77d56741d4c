/* The desired-state document, as liid reads it from any source:
 * desired_parse() over the raw bytes, which runs the strict scan of
 * json-scan.c first and the "lii.desired/1" schema after it, and
 * desired_peek_serial(). So that the schema is fuzzed also by inputs the
 * scan refuses, the bytes json-c alone accepts are written back as compact
 * JSON and parsed again: that text is past the scan unless it holds what
 * the scan exists to refuse.
 *
 * Promises checked: an error is a clean one-line message and success sets
 * none; a document taken is JSON by the letter of RFC 8259 (this file
 * reads it so, as the other parser json-scan.h has in mind); every parsed spec's canonical
 * spec_json reads back with service_spec_parse() (as liid reads it from its state file) to the same
 * spec_json and hash; services come sorted and desired_find() finds each;
 * the same holds for the document from a file:// or etcd:// source. */
#include <string.h>

#include "desired.h"
#include "fuzz.h"

/* An RFC 8259 reader of its own, the "other parser" of json-scan.h: a
 * text that desired_parse() takes must be JSON by the letter of the RFC. */
struct rfc_text {
        const char *p, *end;
        unsigned depth;
};

static bool rfc_value(struct rfc_text *t);

static void rfc_space(struct rfc_text *t)
{
        while (t->p < t->end && (*t->p == ' ' || *t->p == '\t' || *t->p == '\n' || *t->p == '\r'))
                t->p++;
}

static bool rfc_literal(struct rfc_text *t, const char *word)
{
        size_t n = strlen(word);
        if ((size_t)(t->end - t->p) < n || memcmp(t->p, word, n) != 0)
                return false;
        t->p += n;
        return true;
}

static size_t rfc_digits(struct rfc_text *t)
{
        const char *start = t->p;
        while (t->p < t->end && *t->p >= '0' && *t->p <= '9')
                t->p++;
        return (size_t)(t->p - start);
}

static bool rfc_number(struct rfc_text *t)
{
        if (t->p < t->end && *t->p == '-')
                t->p++;
        if (t->p < t->end && *t->p == '0')
                t->p++;
        else if (rfc_digits(t) == 0)
                return false;
        if (t->p < t->end && *t->p == '.') {
                t->p++;
                if (rfc_digits(t) == 0)
                        return false;
        }
        if (t->p < t->end && (*t->p == 'e' || *t->p == 'E')) {
                t->p++;
                if (t->p < t->end && (*t->p == '+' || *t->p == '-'))
                        t->p++;
                if (rfc_digits(t) == 0)
                        return false;
        }
        return true;
}

static bool rfc_string(struct rfc_text *t)
{
        t->p++; /* the opening quote */
        while (t->p < t->end) {
                unsigned char c = (unsigned char)*t->p++;
                if (c == '"')
                        return true;
                if (c < 0x20)
                        return false;
                if (c != '\\')
                        continue;
                if (t->p >= t->end)
                        return false;
                c = (unsigned char)*t->p++;
                if (c == 'u') {
                        for (int i = 0; i < 4; i++, t->p++)
                                if (t->p >= t->end || !strchr("0123456789abcdefABCDEF", *t->p) ||
                                    !*t->p)
                                        return false;
                } else if (!c || !strchr("\"\\/bfnrt", c))
                        return false;
        }
        return false;
}

static bool rfc_members(struct rfc_text *t, char close, bool keys)
{
        t->p++; /* the opening bracket */
        rfc_space(t);
        if (t->p < t->end && *t->p == close) {
                t->p++;
                return true;
        }
        for (;;) {
                if (keys) {
                        if (t->p >= t->end || *t->p != '"' || !rfc_string(t))
                                return false;
                        rfc_space(t);
                        if (t->p >= t->end || *t->p++ != ':')
                                return false;
                }
                if (!rfc_value(t))
                        return false;
                if (t->p >= t->end)
                        return false;
                char c = *t->p++;
                if (c == close)
                        return true;
                if (c != ',')
                        return false;
                rfc_space(t);
        }
}

static bool rfc_value(struct rfc_text *t)
{
        bool ok;
        rfc_space(t);
        if (t->p >= t->end || ++t->depth > 64)
                return false;
        switch (*t->p) {
        case '{':
                ok = rfc_members(t, '}', true);
                break;
        case '[':
                ok = rfc_members(t, ']', false);
                break;
        case '"':
                ok = rfc_string(t);
                break;
        case 't':
                ok = rfc_literal(t, "true");
                break;
        case 'f':
                ok = rfc_literal(t, "false");
                break;
        case 'n':
                ok = rfc_literal(t, "null");
                break;
        default:
                ok = rfc_number(t);
                break;
        }
        t->depth--;
        rfc_space(t);
        return ok;
}

static bool rfc8259_valid(const char *buf, size_t len)
{
        struct rfc_text t = {buf, buf + len, 0};
        return rfc_value(&t) && t.p == t.end;
}

static void check_roundtrip(const struct desired *d)
{
        for (size_t i = 0; i < d->n_services; i++) {
                const struct service_spec *s = &d->services[i];
                if (i > 0)
                        fuzz_check(strcmp(d->services[i - 1].name, s->name) < 0,
                                   "services not sorted");
                fuzz_check(desired_find(d, s->name) == s, "desired_find(%s)", s->name);

                _cleanup_(service_spec_freep) struct service_spec *back = NULL;
                _cleanup_free_ char *error = NULL;
                int r = service_spec_parse(s->name, s->spec_json, &back, &error);
                fuzz_check(r == 0, "spec_json of %s does not parse back: %s\n%s", s->name,
                           error ? error : "", s->spec_json);
                fuzz_check(strcmp(back->spec_json, s->spec_json) == 0,
                           "spec_json of %s changes when read back:\n%s\n%s", s->name, s->spec_json,
                           back->spec_json);
                fuzz_check(strcmp(back->spec_sha256, s->spec_sha256) == 0, "hash of %s changes",
                           s->name);
        }
}

/* Parses buf against base_url; returns desired_parse()'s code. */
static int parse_one(const char *buf, size_t len, const char *base_url, struct desired **ret)
{
        _cleanup_free_ char *error = NULL;
        struct desired *d = NULL;
        int r = desired_parse(buf, len, base_url, &d, &error);
        fuzz_note("desired_parse (%s): %s", base_url, r < 0 ? error : "parsed");
        if (r < 0) {
                fuzz_check(!d, "a refused document was returned");
                fuzz_check(r == -EFBIG || r == -EBADMSG || r == -EINVAL, "code %d", r);
                fuzz_check(fuzz_message_is_clean(error), "unclean error: %s",
                           error ? error : "(none)");
                return r;
        }
        fuzz_check(d && !error, "success with an error: %s", error);
        fuzz_check(rfc8259_valid(buf, len), "a text that is not JSON by RFC 8259 was taken");
        check_roundtrip(d);
        *ret = d;
        return 0;
}

static void parse_document(const char *buf, size_t len)
{
        _cleanup_(desired_freep) struct desired *d = NULL;
        int r = parse_one(buf, len, "https://example.com/lii/desired.json", &d);

        uint64_t serial;
        int peek = desired_peek_serial(buf, len, &serial);
        if (r == 0) {
                fuzz_check(peek == 0 && serial == d->serial, "peek_serial disagrees");
                /* Other sources: relative artifact URLs resolve against
                 * a file:// URL, and are refused from etcd. */
                _cleanup_(desired_freep) struct desired *f = NULL;
                _cleanup_(desired_freep) struct desired *e = NULL;
                (void)parse_one(buf, len, "file:///etc/lii/desired.json", &f);
                (void)parse_one(buf, len, "etcd://127.0.0.1:2379/lii", &e);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *buf = (const char *)data;
        parse_document(buf, size);

        /* After the scan: what json-c alone makes of the bytes. */
        if (size > DESIRED_MAX_BYTES)
                return 0;
        _cleanup_(json_tokener_freep) struct json_tokener *tok = json_tokener_new();
        _cleanup_json_ json_object *o = json_tokener_parse_ex(tok, buf, (int)size);
        if (!o || json_tokener_get_error(tok) != json_tokener_success)
                return 0;
        size_t len = 0;
        const char *text = json_object_to_json_string_length(
            o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (len != size || memcmp(text, buf, size) != 0)
                parse_document(text, len);
        return 0;
}
