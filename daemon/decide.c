/* Reconcile rules; see decide.h and the brief's "Rollout semantics". */
#include "decide.h"

#include <string.h>

static bool same(const char *a, const char *b)
{
        return a && b && *a && strcmp(a, b) == 0;
}

static enum decision decide_unpaused(const struct decide_input *in);

/* Pause holds changes: new specs and removals wait. Bringing back a dead
 * instance with the spec it ran is not a change, and goes on; nor does an
 * operator's explicit replace. */
enum decision decide(const struct decide_input *in)
{
        enum decision d = decide_unpaused(in);
        if (!in->paused || in->force)
                return d;
        bool same_spec_again = !in->current_alive && in->current_spec &&
                               (!in->have_document || same(in->want_spec, in->current_spec));
        if ((d == DECIDE_ROLLOUT && !same_spec_again) || d == DECIDE_REMOVE)
                return DECIDE_PAUSED;
        return d;
}

static enum decision decide_unpaused(const struct decide_input *in)
{
        if (in->rollout_in_flight || in->removing)
                return DECIDE_WAIT;
        /* A dead instance waits out its restart delay, unless the document
         * asks for something else (another spec, or no service at all),
         * which happens at once. */
        if (in->backoff_pending && !in->current_alive &&
            (!in->have_document || same(in->want_spec, in->current_spec)))
                return DECIDE_WAIT;
        if (!in->have_document) {
                /* Without a document (the source may be down at start-up)
                 * what ran keeps running, and an instance that died is
                 * brought back from its recorded spec: a service that had a
                 * healthy instance is never left without one. */
                if (!in->current_spec || in->current_alive)
                        return in->current_spec ? DECIDE_RUNNING : DECIDE_NOTHING;
                if (same(in->refused_spec, in->current_spec))
                        return DECIDE_REFUSED;
                return in->running_rollouts < in->max_parallel ? DECIDE_RESTORE : DECIDE_QUEUE;
        }
        if (!in->want_spec)
                return DECIDE_REMOVE;
        if (in->force)
                return in->running_rollouts < in->max_parallel ? DECIDE_ROLLOUT : DECIDE_QUEUE;
        if (in->current_alive && same(in->current_spec, in->want_spec))
                return DECIDE_RUNNING;
        if (same(in->refused_spec, in->want_spec))
                return DECIDE_REFUSED;
        return in->running_rollouts < in->max_parallel ? DECIDE_ROLLOUT : DECIDE_QUEUE;
}

const char *decision_to_string(enum decision d)
{
        static const char *const names[] = {
                [DECIDE_WAIT] = "wait",       [DECIDE_NOTHING] = "nothing",
                [DECIDE_RUNNING] = "running", [DECIDE_REFUSED] = "refused",
                [DECIDE_QUEUE] = "queue",     [DECIDE_ROLLOUT] = "rollout",
                [DECIDE_RESTORE] = "restore", [DECIDE_REMOVE] = "remove",
                [DECIDE_PAUSED] = "paused",
        };
        return (unsigned)d < sizeof names / sizeof names[0] ? names[d] : "?";
}
