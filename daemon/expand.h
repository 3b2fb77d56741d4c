/* Expansion of ${PORT}, ${LII_SERVICE}, ${LII_GENERATION} and
 * ${LII_ARTIFACT_DIR} in exec, env and health templates. The desired-state
 * parser already refused any other ${…}, so expansion cannot fail. */
#pragma once

#include <stdint.h>

struct expand_vars {
        int port;
        const char *service;
        uint64_t generation;
        const char *artifact_dir;
};

/* Returns a malloc'ed string. */
char *expand_template(const char *tpl, const struct expand_vars *v);
/* Expands each string of a NULL-terminated vector; returns a new vector. */
char **expand_strv(char *const *tpl, const struct expand_vars *v);
