/* The desired-state document (format "lii.desired/1"): parsing and
 * validation of untrusted JSON into service specs. Every error names the
 * JSON path and the reason, e.g.
 *   "services.hello.artifact.sha256: not 64 hex digits". */
#pragma once

#include <json-c/json.h>
#include <stdint.h>

#include "sha256.h"
#include "util.h"

#define DESIRED_FORMAT            "lii.desired/1"
#define DESIRED_MAX_SERVICES      4096
#define DESIRED_MAX_STRING        4096          /* any one string value, bytes */
#define DESIRED_MAX_ARGS          256           /* exec arguments */
#define DESIRED_MAX_ENV           256           /* env entries */
#define DESIRED_MAX_BYTES         (1024 * 1024) /* a whole document, or one spec_json */
#define DESIRED_MAX_DEPTH         8             /* objects and arrays nested */
#define DESIRED_MAX_DURATION_USEC (24 * 3600 * USEC_PER_SEC) /* any one duration */
#define DESIRED_MAX_HEALTH_PASSES 100
#define DESIRED_MAX_CPU_PERCENT   10000
#define DESIRED_MAX_TASKS         4194304 /* the kernel's own ceiling on PIDs */
#define DESIRED_MAX_LISTEN        16      /* addresses in "listen" */
/* "255.255.255.255:65535", "[ffff:…:ffff]:65535" and a NUL */
#define LISTEN_ADDRESS_MAX 56

/* The one service name that is refused although it fits the grammar. */
#define DESIRED_RESERVED_NAME "store"

enum artifact_type { ARTIFACT_TAR, ARTIFACT_FILE };
enum ready_kind { READY_STARTED, READY_NOTIFY };
enum health_kind { HEALTH_NONE, HEALTH_HTTP, HEALTH_TCP, HEALTH_EXEC };
enum sandbox_kind { SANDBOX_STRICT, SANDBOX_NONE };

/* A fleet rollout of the service's spec (its "rollout" block): not part of
 * the spec, so changing it never replaces an instance by itself. */
#define ROLLOUT_ID_MAX           64
#define ROLLOUT_MAX_PARALLEL_MAX 10000
#define ROLLOUT_MAX_FAILURES_MAX 10000
struct rollout_policy {
        bool set;                    /* the document has a rollout block */
        char id[ROLLOUT_ID_MAX + 1]; /* [A-Za-z0-9._-], names the rollout in etcd keys */
        unsigned percent_hundredths; /* 0 … 10000: percent × 100 */
        unsigned max_parallel;       /* 0: no limit */
        unsigned max_failures;       /* 0: no limit */
};

struct health_spec {
        enum health_kind kind;
        char *target;     /* http: URL template; tcp: "host:port" template; else NULL */
        char **exec_argv; /* exec: argv templates, NULL-terminated; else NULL */
        uint64_t interval_usec, timeout_usec, deadline_usec, watch_usec;
        unsigned passes;
};

struct service_spec {
        char *name;
        char *artifact_url;  /* absolute: resolved against the document URL */
        char *signature_url; /* absolute; defaults to artifact_url + ".minisig" */
        char artifact_sha256[SHA256_HEX_LEN + 1];
        uint64_t artifact_size;
        enum artifact_type artifact_type;
        char **exec; /* NULL-terminated templates; exec[0] relative to the artifact root */
        char **env;  /* NULL-terminated "KEY=value" templates, sorted by key */
        int port;    /* 0 for "auto", otherwise 1..65535 */
        /* Addresses every generation listens on through one socket unit of
         * its own, in the listed order, normalized ("0.0.0.0:8080",
         * "[::]:8080"); NULL-terminated, NULL when there are none. */
        char **listen;
        enum ready_kind ready;
        struct health_spec health;
        uint64_t stop_timeout_usec;
        uint64_t memory_max;  /* bytes, 0 = no limit */
        unsigned cpu_percent; /* 0 = no limit; may exceed 100 on several cores */
        uint64_t tasks_max;   /* 0 = no limit */
        enum sandbox_kind sandbox;
        struct rollout_policy rollout; /* from the document only, never in spec_json */
        char *spec_json;               /* canonical JSON of the entry (keys sorted, no spaces) */
        char spec_sha256[SHA256_HEX_LEN + 1]; /* SHA-256 of spec_json */
};

struct desired {
        uint64_t serial;
        uint64_t expires_usec; /* 0 when absent */
        size_t n_services;
        struct service_spec *services; /* sorted by name */
};

/* Parses and validates a whole document. base_url is the document's own URL,
 * against which relative artifact URLs resolve (from an etcd(s):// URL they
 * are refused: "PATH: must be absolute in a document from etcd"). On failure returns a negative
 * errno-style code and sets *ret_error to a malloc'ed "path: reason" message;
 * on success sets *ret and leaves *ret_error untouched.
 * The codes: -EFBIG for more than DESIRED_MAX_BYTES, -EBADMSG for anything
 * that is not strict JSON (syntax, trailing data, NUL bytes, duplicate keys,
 * nesting deeper than DESIRED_MAX_DEPTH, a key or value that is not strict
 * UTF-8 or holds a NUL, even as \u0000), -EINVAL for valid JSON that breaks
 * the "lii.desired/1" schema. Whether serial and expires are acceptable is
 * the caller's judgement: only their syntax is checked here. */
int desired_parse(const char *buf, size_t len, const char *base_url, struct desired **ret,
                  char **ret_error);

/* The serial of a document that desired_parse() refused, when it is JSON
 * within the limits above with a valid "serial": which document a refusal
 * is about. Returns 0 and sets *ret_serial, or -ENODATA. */
int desired_peek_serial(const char *buf, size_t len, uint64_t *ret_serial);

/* Parses one service entry, as stored by spec_json (URLs already absolute).
 * Used to bring back the spec of a running or previous instance from the
 * state file. Same error convention; the path is prefixed "services.<name>". */
int service_spec_parse(const char *name, const char *spec_json, struct service_spec **ret,
                       char **ret_error);

/* Looks a service up by name; NULL when absent. */
const struct service_spec *desired_find(const struct desired *d, const char *name);

struct desired *desired_free(struct desired *d);
struct service_spec *service_spec_free(struct service_spec *s);
void service_spec_done(struct service_spec *s); /* frees members only */
static inline void desired_freep(struct desired **d)
{
        desired_free(*d);
}
static inline void service_spec_freep(struct service_spec **s)
{
        service_spec_free(*s);
}
