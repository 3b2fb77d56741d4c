/* A fleet rollout's rules; see canary.h. */
#include "canary.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "util.h"

unsigned canary_bucket(const char *node, const char *service, const char *id)
{
        size_t ln = strlen(node), ls = strlen(service), li = strlen(id);
        _cleanup_free_ char *buf = xcalloc(1, ln + ls + li + 2);
        memcpy(buf, node, ln + 1); /* with its NUL */
        memcpy(buf + ln + 1, service, ls + 1);
        memcpy(buf + ln + ls + 2, id, li);
        char hex[SHA256_HEX_LEN + 1];
        if (sha256_hex_of(buf, ln + ls + li + 2, hex) < 0)
                abort(); /* OpenSSL out of memory */
        /* The first 8 bytes, big-endian: the first 16 hex digits. */
        hex[16] = '\0';
        return (unsigned)(strtoull(hex, NULL, 16) % CANARY_BUCKETS);
}

const char *canary_state_to_string(enum canary_state s)
{
        switch (s) {
        case CANARY_APPLIED:
                return "applied";
        case CANARY_OUTSIDE:
                return "outside-canary";
        case CANARY_WAITING_FOR_SLOT:
                return "waiting-for-slot";
        case CANARY_HALTED:
                return "halted";
        }
        return "unknown";
}

/* "10%", "0.5%", "12.25%" */
static void format_percent(unsigned hundredths, char *buf, size_t size)
{
        if (hundredths % 100 == 0)
                snprintf(buf, size, "%u%%", hundredths / 100);
        else if (hundredths % 10 == 0)
                snprintf(buf, size, "%u.%u%%", hundredths / 100, hundredths % 100 / 10);
        else
                snprintf(buf, size, "%u.%02u%%", hundredths / 100, hundredths % 100);
}

struct canary_verdict canary_decide(const struct canary_input *in)
{
        struct canary_verdict v = {.state = CANARY_APPLIED};
        char percent[16];
        format_percent(in->percent_hundredths, percent, sizeof percent);

        /* A node that runs nothing of the service has nothing to keep, and
         * one that already runs the spec has nothing to take. */
        if (!in->runs_spec) {
                snprintf(v.reason, sizeof v.reason,
                         "runs nothing of the service: takes it at once");
                return v;
        }
        if (!in->new_spec) {
                snprintf(v.reason, sizeof v.reason, "runs the desired spec");
                return v;
        }
        /* It took the spec and it failed here: nothing to wait for, and
         * no slot to hold (the failure is on record for the fleet). */
        if (in->failed_here) {
                snprintf(v.reason, sizeof v.reason, "failed on this node");
                return v;
        }
        if (in->bucket >= in->percent_hundredths) {
                v.state = CANARY_OUTSIDE;
                snprintf(v.reason, sizeof v.reason, "outside canary %s", percent);
                return v;
        }
        if (!in->fleet) {
                if (in->max_parallel || in->max_failures)
                        snprintf(v.reason, sizeof v.reason,
                                 "in canary %s; max_parallel and max_failures need an etcd "
                                 "source: not enforced",
                                 percent);
                else
                        snprintf(v.reason, sizeof v.reason, "in canary %s", percent);
                return v;
        }
        if (in->max_failures && in->failures >= in->max_failures) {
                v.state = CANARY_HALTED;
                snprintf(v.reason, sizeof v.reason, "halted: %u node%s failed (max_failures %u)",
                         in->failures, in->failures == 1 ? "" : "s", in->max_failures);
                return v;
        }
        /* No replacement step without a fresh lease: a node cut off from
         * etcd cannot know how many others are replacing. */
        if (!in->lease_fresh) {
                v.state = CANARY_WAITING_FOR_SLOT;
                snprintf(v.reason, sizeof v.reason, "waiting for etcd (no fresh lease)");
                return v;
        }
        if (in->max_parallel && !in->slot_held) {
                v.state = CANARY_WAITING_FOR_SLOT;
                snprintf(v.reason, sizeof v.reason, "waiting for a slot");
                return v;
        }
        snprintf(v.reason, sizeof v.reason, "in canary %s", percent);
        return v;
}
