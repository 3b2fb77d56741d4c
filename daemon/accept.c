/* See accept.h. */
#include "accept.h"

#include <errno.h>
#include <string.h>

#include "sha256.h"
#include "util.h"

static void delivery_id(const struct accept_input *in,
                        const char doc_sha[static SHA256_HEX_LEN + 1],
                        char out[static SHA256_HEX_LEN + 1])
{
        size_t sig_len = in->sig ? in->sig_len : 0;
        _cleanup_free_ char *both = xcalloc(SHA256_HEX_LEN + sig_len, 1);
        memcpy(both, doc_sha, SHA256_HEX_LEN);
        if (sig_len)
                memcpy(both + SHA256_HEX_LEN, in->sig, sig_len);
        sha256_hex_of(both, SHA256_HEX_LEN + sig_len, out);
}

static int refuse(struct accept_result *ret, int r, int64_t serial, char *error)
{
        ret->error = error;
        ret->refused_serial = serial;
        return r;
}

static int verify(const struct accept_input *in, struct accept_result *ret)
{
        if (!in->keys)
                return 0;
        if (!in->sig)
                return refuse(
                    ret, -ENOENT, -1,
                    xasprintf("signature: %s", in->sig_error ? in->sig_error : "none delivered"));
        _cleanup_(minisign_sig_freep) struct minisign_sig *sig = NULL;
        _cleanup_free_ char *error = NULL;
        const struct minisign_key *key;
        int r = minisign_sig_parse(in->sig, in->sig_len, &sig, &error);
        if (r == 0)
                r = minisign_verify_buffer(in->keys, sig, in->doc, in->doc_len, 0, &key, &error);
        if (r < 0)
                return refuse(ret, r, -1, xasprintf("%s.minisig: %s", in->source_url, error));
        ret->key_id = xstrdup(key->key_id_string);
        ret->trusted_comment = xstrdup(sig->trusted_comment);
        return 0;
}

int accept_document(const struct accept_input *in, struct accept_result *ret)
{
        *ret = (struct accept_result){.refused_serial = -1};
        sha256_hex_of(in->doc, in->doc_len, ret->doc_sha256);
        delivery_id(in, ret->doc_sha256, ret->delivery_id);

        int r = verify(in, ret);
        if (r < 0)
                return r;

        _cleanup_(desired_freep) struct desired *d = NULL;
        _cleanup_free_ char *error = NULL;
        r = desired_parse(in->doc, in->doc_len, in->source_url, &d, &error);
        if (r < 0) {
                /* The parser's message names its own place: a JSON path, or
                 * "document" for the text as a whole. Signed, so its serial
                 * says whose document this is. */
                uint64_t serial;
                bool known = desired_peek_serial(in->doc, in->doc_len, &serial) == 0;
                return refuse(ret, r, known ? (int64_t)serial : -1, TAKE_PTR(error));
        }

        bool any_applied = in->applied_sha256 && in->applied_sha256[0];
        if (any_applied && d->serial < in->applied_serial)
                return refuse(ret, -ESTALE, (int64_t)d->serial,
                              xasprintf("document: serial %llu is lower than the applied serial "
                                        "%llu (rollback refused)",
                                        (unsigned long long)d->serial,
                                        (unsigned long long)in->applied_serial));
        if (any_applied && d->serial == in->applied_serial &&
            strcmp(ret->doc_sha256, in->applied_sha256) != 0)
                return refuse(ret, -EEXIST, (int64_t)d->serial,
                              xasprintf("document: serial %llu was already applied with other "
                                        "content (refused)",
                                        (unsigned long long)d->serial));
        ret->clock_usec =
            in->now_usec > in->clock_high_water_usec ? in->now_usec : in->clock_high_water_usec;
        if (d->expires_usec && d->expires_usec <= ret->clock_usec) {
                char when[RFC3339_MAX];
                format_rfc3339(d->expires_usec, when);
                return refuse(ret, -ETIME, (int64_t)d->serial,
                              xasprintf("document: expired at %s", when));
        }
        ret->desired = TAKE_PTR(d);
        return 0;
}

void accept_result_done(struct accept_result *r)
{
        desired_free(r->desired);
        free(r->key_id);
        free(r->trusted_comment);
        free(r->error);
        *r = (struct accept_result){.refused_serial = -1};
}
