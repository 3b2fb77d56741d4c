/* Reconcile rules; see decide.h and the brief's "Rollout semantics". */
#include "decide.h"

#include <string.h>

static bool same(const char *a, const char *b)
{
        return a && b && *a && strcmp(a, b) == 0;
}

/* Starts d if a rollout slot is free. */
static enum decision slot(const struct decide_input *in, enum decision d)
{
        return in->running_rollouts < in->max_parallel ? d : DECIDE_QUEUE;
}

/* A new generation of a service whose generation before the current one
 * is still stopping waits for it to go, unless the current one is dead:
 * a service runs at most two generations at once, so that the sockets of
 * an address hand over connections between the current one and its
 * successor only. */
static enum decision next_generation(const struct decide_input *in)
{
        if (in->retiring && in->current_alive)
                return DECIDE_WAIT;
        return slot(in, DECIDE_ROLLOUT);
}

/* A current instance that died, when the document's own spec cannot run:
 * its recorded spec comes back, unless that spec was refused; then the
 * previous revision does (a revert that a crash interrupted, or a spec that
 * ran out of restarts). A service that had a healthy instance is not left
 * without one while anything it ran before may still run. */
static enum decision bring_back(const struct decide_input *in)
{
        if (in->backoff_pending)
                return DECIDE_WAIT;
        if (!same(in->refused_spec, in->current_spec))
                return slot(in, DECIDE_RESTORE);
        if (in->previous_spec && !same(in->refused_spec, in->previous_spec))
                return slot(in, DECIDE_REVERT);
        return DECIDE_REFUSED;
}

static enum decision decide_unpaused(const struct decide_input *in)
{
        bool dead = in->current_spec && !in->current_alive;
        if (in->rollout_in_flight || in->removing)
                return DECIDE_WAIT;
        if (!in->have_document) {
                /* Without a document (the source may be down at start-up)
                 * what ran keeps running, and what died comes back. */
                if (!in->current_spec)
                        return DECIDE_NOTHING;
                return dead ? bring_back(in) : DECIDE_RUNNING;
        }
        if (!in->want_spec)
                return DECIDE_REMOVE;
        if (in->force)
                return next_generation(in);
        if (in->current_alive && same(in->current_spec, in->want_spec))
                return DECIDE_RUNNING;
        if (same(in->refused_spec, in->want_spec))
                return dead ? bring_back(in) : DECIDE_REFUSED;
        /* A dead instance of the wanted spec waits out its restart delay;
         * another spec is rolled out at once. */
        if (dead && in->backoff_pending && same(in->want_spec, in->current_spec))
                return DECIDE_WAIT;
        return next_generation(in);
}

/* Pause holds changes: new specs and removals wait. Keeping a service up is
 * not a change: a dead instance still comes back (its own spec, or the
 * previous revision), and an operator's explicit replace goes through. */
static enum decision decide_unheld(const struct decide_input *in)
{
        enum decision d = decide_unpaused(in);
        if (!in->paused || in->force)
                return d;
        if (d == DECIDE_REMOVE)
                return DECIDE_PAUSED;
        if (d != DECIDE_ROLLOUT)
                return d;
        bool dead = in->current_spec && !in->current_alive;
        if (!dead)
                return DECIDE_PAUSED;
        if (same(in->want_spec, in->current_spec))
                return d;
        enum decision back = bring_back(in);
        return back == DECIDE_REFUSED ? DECIDE_PAUSED : back;
}

/* A state folder that takes no writes holds everything that would start,
 * even bringing a dead instance back: each step begins by writing the
 * state, and none may happen unrecorded. It all starts once the folder
 * takes writes again. */
enum decision decide(const struct decide_input *in)
{
        enum decision d = decide_unheld(in);
        if (!in->storage_failing)
                return d;
        switch (d) {
        case DECIDE_QUEUE:
        case DECIDE_ROLLOUT:
        case DECIDE_RESTORE:
        case DECIDE_REMOVE:
        case DECIDE_REVERT:
                return DECIDE_STORAGE;
        default:
                return d;
        }
}

const char *decision_to_string(enum decision d)
{
        static const char *const names[] = {
            [DECIDE_WAIT] = "wait",       [DECIDE_NOTHING] = "nothing",
            [DECIDE_RUNNING] = "running", [DECIDE_REFUSED] = "refused",
            [DECIDE_QUEUE] = "queue",     [DECIDE_ROLLOUT] = "rollout",
            [DECIDE_RESTORE] = "restore", [DECIDE_REMOVE] = "remove",
            [DECIDE_PAUSED] = "paused",   [DECIDE_REVERT] = "revert",
            [DECIDE_STORAGE] = "storage",
        };
        return (unsigned)d < sizeof names / sizeof names[0] ? names[d] : "?";
}

/* A failure is a verdict on the spec, which is quarantined, unless the
 * service's current instance had died and this was its replacement with
 * the same spec: that is tried again after the restart delay, and refused
 * only when the replacements run out. A failure for want of room is no
 * verdict (the spec is tried again once the folder takes writes), except
 * for an operator's rollback, which is one attempt. A hold keeps its own
 * refusal, the spec the operator left. */
struct failure_rules decide_failure(const struct failure_input *in)
{
        struct failure_rules f = {0};
        f.verdict = in->spec_at_fault || in->kind == ROLLOUT_ROLLBACK;
        f.retry_later = f.verdict && in->replacing_dead && in->restarts_left;
        f.quarantine = f.verdict && !f.retry_later && !in->held;
        f.release_hold = in->kind == ROLLOUT_ROLLBACK;
        f.revert_later = !f.verdict && in->kind == ROLLOUT_REVERT;
        return f;
}
