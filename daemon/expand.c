/* Template expansion; see expand.h. */
#include "expand.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

char *expand_template(const char *tpl, const struct expand_vars *v)
{
        char port[16], gen[32];
        snprintf(port, sizeof port, "%d", v->port);
        snprintf(gen, sizeof gen, "%" PRIu64, v->generation);
        const struct {
                const char *name;
                const char *value;
        } vars[] = {
            {"${PORT}", port},
            {"${LII_SERVICE}", v->service},
            {"${LII_GENERATION}", gen},
            {"${LII_ARTIFACT_DIR}", v->artifact_dir},
        };

        char *out = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&out, &size);
        if (!f)
                abort();
        for (const char *p = tpl; *p;) {
                bool matched = false;
                for (size_t i = 0; i < ELEMENTSOF(vars) && !matched; i++) {
                        size_t n = strlen(vars[i].name);
                        if (strncmp(p, vars[i].name, n) == 0) {
                                fputs(vars[i].value ? vars[i].value : "", f);
                                p += n;
                                matched = true;
                        }
                }
                if (!matched)
                        fputc(*p++, f);
        }
        if (fclose(f) != 0)
                abort();
        return out;
}

char **expand_strv(char *const *tpl, const struct expand_vars *v)
{
        size_t n = strv_length(tpl);
        char **out = xcalloc(n + 1, sizeof *out);
        for (size_t i = 0; i < n; i++)
                out[i] = expand_template(tpl[i], v);
        return out;
}
