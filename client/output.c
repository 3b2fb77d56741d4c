/* The output helpers liictl's commands share (and liictl-verify, which
 * prints as liictl): colours, text from liid made safe for a terminal,
 * liid's JSON as it came, and lookups in liid's documents. */
#include "liictl.h"

#include <string.h>

const char *ctl_color(const struct ctl *ctl, const char *sgr)
{
        return ctl->color ? sgr : "";
}

const char *ctl_state_color(const struct ctl *ctl, const char *state)
{
        if (!state)
                return "";
        if (strcmp(state, "running") == 0)
                return ctl_color(ctl, COLOR_GREEN);
        /* A reverting service had a rollout go wrong: as worth a look as a
         * failed one. */
        if (strcmp(state, "failed") == 0 || strcmp(state, "reverting") == 0)
                return ctl_color(ctl, COLOR_RED);
        /* Going away on purpose (removed from the desired state) needs no
         * attention. */
        if (strcmp(state, "stopping") == 0 || strcmp(state, "stopped") == 0)
                return "";
        return ctl_color(ctl, COLOR_YELLOW);
}

void ctl_print_json(const struct ctl *ctl, const struct client_reply *reply)
{
        if (ctl->tty && reply->doc) {
                printf("%s\n", json_object_to_json_string_ext(
                                   reply->doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
                return;
        }
        fwrite(reply->body, 1, reply->size, stdout);
        if (reply->size == 0 || reply->body[reply->size - 1] != '\n')
                putchar('\n');
}

/* What a terminal would take as a command rather than text. */
static bool is_control(char c)
{
        return (unsigned char)c < 0x20 || c == 0x7f;
}

char *ctl_printable(const char *s)
{
        char *p = xstrdup(s ? s : "");
        for (char *q = p; *q; q++)
                if (is_control(*q))
                        *q = '?';
        return p;
}

bool ctl_is_printable(const char *s, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (is_control(s[i]))
                        return false;
        return true;
}

json_object *json_get(json_object *o, const char *key, json_type type)
{
        json_object *v;
        if (!o || !json_object_is_type(o, json_type_object) ||
            !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
                return NULL;
        return v;
}

const char *json_get_string(json_object *o, const char *key)
{
        return json_object_get_string(json_get(o, key, json_type_string));
}
