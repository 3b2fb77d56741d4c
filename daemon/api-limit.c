/* Per-uid and reserved slots of the API's connections; see api-limit.h. */
#include "api-limit.h"

#include <assert.h>

static size_t uid_find(const struct api_limit *l, uid_t uid)
{
        size_t i = 0;
        while (i < l->n_uids && l->uids[i].uid != uid)
                i++;
        return i;
}

enum api_limit_verdict api_limit_take(struct api_limit *l, uid_t uid, bool admin)
{
        if (l->total >= API_LIMIT_CONNECTIONS)
                return API_LIMIT_FULL;
        if (admin) {
                l->total++;
                return API_LIMIT_ADMIT;
        }

        size_t i = uid_find(l, uid);
        if (i < l->n_uids && l->uids[i].n >= API_LIMIT_PER_UID)
                return API_LIMIT_UID_FULL;
        if (l->shared >= API_LIMIT_SHARED)
                return API_LIMIT_FULL;
        /* A uid without a slot yet finds a free entry: there are as many
         * entries as shared slots, and this one is free. */
        if (i == l->n_uids)
                l->uids[l->n_uids++] = (typeof(l->uids[0])){.uid = uid};
        l->uids[i].n++;
        l->shared++;
        l->total++;
        return API_LIMIT_ADMIT;
}

void api_limit_release(struct api_limit *l, uid_t uid, bool admin)
{
        assert(l->total > 0);
        l->total--;
        if (admin)
                return;

        size_t i = uid_find(l, uid);
        assert(i < l->n_uids && l->uids[i].n > 0 && l->shared > 0);
        l->shared--;
        if (--l->uids[i].n == 0)
                l->uids[i] = l->uids[--l->n_uids];
}
