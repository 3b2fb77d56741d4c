/* Whether a delivered desired-state document may be applied: lii's security
 * core as one pure function of the bytes, the signature, the trusted keys,
 * what the node has applied before and the time. No I/O, no engine: the
 * engine records what it accepts, and a refusal changes nothing.
 *
 * The rules, in order: a signature by a trusted key over exactly these bytes
 * (unless signatures are not required); a document that parses and passes
 * the schema; a serial not below the applied one; the applied serial only
 * with the applied bytes (no equivocation); and no expiry at or before the
 * later of the clock and the newest time the node has seen (a clock set back
 * does not revive an expired document). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "desired.h"
#include "minisign.h"
#include "sha256.h"

struct accept_input {
        const char *doc;
        size_t doc_len;
        const char *sig; /* NULL: none was delivered, sig_error says why */
        size_t sig_len;
        const char *sig_error;
        const struct minisign_keyring *keys; /* NULL: require_signature = no */
        const char *source_url;              /* the base of relative URLs, and for messages */
        /* What the node has applied (persisted, so it holds across restarts). */
        uint64_t applied_serial;
        const char *applied_sha256; /* "" before the first document */
        uint64_t clock_high_water_usec;
        uint64_t now_usec; /* realtime */
};

struct accept_result {
        char doc_sha256[SHA256_HEX_LEN + 1];
        /* The delivery: the document's hash and the signature that came
         * with it, as a document signed again is news even when it is
         * refused for the same reason. */
        char delivery_id[SHA256_HEX_LEN + 1];
        /* Accepted (0): */
        struct desired *desired;
        char *key_id, *trusted_comment; /* NULL when unsigned */
        uint64_t clock_usec;            /* the later of now and the high-water mark */
        /* Refused (< 0): */
        char *error;            /* names the place: a JSON path, "document", the .minisig */
        int64_t refused_serial; /* -1 when the serial is unknown or untrusted */
};

/* Fills *ret in either case: returns 0 when the document is accepted, or a
 * negative errno with ret->error set. Free with accept_result_done(). */
int accept_document(const struct accept_input *in, struct accept_result *ret);
void accept_result_done(struct accept_result *r);
