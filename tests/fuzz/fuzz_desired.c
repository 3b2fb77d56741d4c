/* The desired-state document, as liid reads it from any source:
 * desired_parse() over the raw bytes, which runs the strict scan of
 * json-scan.c first and the "lii.desired/1" schema after it, and
 * desired_peek_serial(). So that the schema is fuzzed also by inputs the
 * scan refuses, the bytes json-c alone accepts are written back as compact
 * JSON and parsed again: that text is past the scan unless it holds what
 * the scan exists to refuse.
 *
 * Promises checked: an error is a clean one-line message and success sets
 * none; every parsed spec's canonical spec_json reads back with
 * service_spec_parse() (as liid reads it from its state file) to the same
 * spec_json and hash; services come sorted and desired_find() finds each;
 * the same holds for the document from a file:// or etcd:// source. */
#include <string.h>

#include "desired.h"
#include "fuzz.h"

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
