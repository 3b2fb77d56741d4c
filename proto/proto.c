/* Encoding helpers for the wire format declared in lii-proto.h. */
#include "lii-proto.h"

#include <errno.h>
#include <string.h>

static const char *const state_names[_LII_STATE_MAX] = {
    [LII_STATE_PENDING] = "pending",     [LII_STATE_FETCHING] = "fetching",
    [LII_STATE_STARTING] = "starting",   [LII_STATE_CHECKING] = "checking",
    [LII_STATE_RUNNING] = "running",     [LII_STATE_FAILED] = "failed",
    [LII_STATE_REVERTING] = "reverting", [LII_STATE_STOPPING] = "stopping",
    [LII_STATE_STOPPED] = "stopped",
};

const char *lii_state_to_string(enum lii_state s)
{
        return (unsigned)s < _LII_STATE_MAX ? state_names[s] : NULL;
}

int lii_state_from_string(const char *s)
{
        for (int i = 0; s && i < _LII_STATE_MAX; i++)
                if (strcmp(state_names[i], s) == 0)
                        return i;
        return -EINVAL;
}

const char *const lii_column_names[_LII_COLUMN_MAX] = {
    [LII_COLUMN_NAME] = "name",
    [LII_COLUMN_STATE] = "state",
    [LII_COLUMN_HELD] = "held",
    [LII_COLUMN_GENERATION] = "generation",
    [LII_COLUMN_UNIT] = "unit",
    [LII_COLUMN_HEALTHY] = "healthy",
    [LII_COLUMN_ACTIVE_SINCE] = "active_since",
    [LII_COLUMN_LAST_RESULT] = "last_result",
    [LII_COLUMN_LAST_REASON] = "last_reason",
    [LII_COLUMN_LAST_DURATION_MS] = "last_duration_ms",
    [LII_COLUMN_ROLLOUT_STATE] = "rollout_state",
    [LII_COLUMN_ROLLOUT_REASON] = "rollout_reason",
};

const char *lii_result_to_string(enum lii_result r)
{
        switch (r) {
        case LII_RESULT_SUCCEEDED:
                return "succeeded";
        case LII_RESULT_FAILED:
                return "failed";
        case LII_RESULT_REVERTED:
                return "reverted";
        default:
                return NULL;
        }
}

json_object *lii_error_new(const char *code, const char *message)
{
        json_object *inner = json_object_new_object();
        json_object_object_add(inner, LII_F_CODE, json_object_new_string(code));
        json_object_object_add(inner, LII_F_MESSAGE, json_object_new_string(message));
        json_object *doc = json_object_new_object();
        json_object_object_add(doc, LII_F_ERROR, inner);
        return doc;
}
