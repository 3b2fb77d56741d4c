/* How many of the API's connections each peer may hold. Every user that
 * can reach the socket shares one pool, so one user (or a few) must not be
 * able to take all of it: each uid other than root and admin_group gets a
 * share, and the last slots are kept for root and admin_group, so that an
 * operator can always get in. Pure bookkeeping: the API asks before it
 * serves a connection and gives the slot back when it closes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Connections served at once, in all. */
#define API_LIMIT_CONNECTIONS 64u
/* Of those, the ones only root and admin_group members may use. */
#define API_LIMIT_RESERVED 8u
/* What one uid that is neither root nor in admin_group may hold. */
#define API_LIMIT_PER_UID 16u
/* What the peers that are not admins may hold together. */
#define API_LIMIT_SHARED (API_LIMIT_CONNECTIONS - API_LIMIT_RESERVED)

enum api_limit_verdict {
        API_LIMIT_ADMIT,
        API_LIMIT_UID_FULL, /* this uid holds API_LIMIT_PER_UID already */
        API_LIMIT_FULL,     /* every slot this peer may use is taken */
};

struct api_limit {
        unsigned total;  /* every connection held */
        unsigned shared; /* those held by peers that are not admins */
        /* The uids of the peers that are not admins and hold a slot: never
         * more than the slots they may hold. */
        struct {
                uid_t uid;
                unsigned n;
        } uids[API_LIMIT_SHARED];
        size_t n_uids;
};

/* Takes a slot for a connection of uid when the limits allow it; admin
 * says that the peer is root or in admin_group. */
enum api_limit_verdict api_limit_take(struct api_limit *l, uid_t uid, bool admin);
/* Gives back a slot taken with the same uid and admin. */
void api_limit_release(struct api_limit *l, uid_t uid, bool admin);
