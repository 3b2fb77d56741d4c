/* The names of lii's units; see unit-name.h. */
#include "unit-name.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

char *unit_name_instance(char buf[static UNIT_NAME_SIZE], const char *service, uint64_t generation)
{
        snprintf(buf, UNIT_NAME_SIZE, UNIT_NAME_PREFIX "%s@%llu.service", service,
                 (unsigned long long)generation);
        return buf;
}

char *unit_name_socket(char buf[static UNIT_NAME_SIZE], const char *service, uint64_t generation)
{
        snprintf(buf, UNIT_NAME_SIZE, UNIT_NAME_PREFIX "%s@%llu.socket", service,
                 (unsigned long long)generation);
        return buf;
}

char *unit_name_check(char buf[static UNIT_NAME_SIZE], const char *service, uint64_t generation,
                      unsigned n)
{
        snprintf(buf, UNIT_NAME_SIZE, UNIT_NAME_PREFIX "%s@%llu-check-%u.service", service,
                 (unsigned long long)generation, n);
        return buf;
}

static bool parse_with_suffix(const char *unit, const char *suffix,
                              char ret_service[static LII_SERVICE_NAME_MAX + 1],
                              uint64_t *ret_generation)
{
        const size_t prefix = strlen(UNIT_NAME_PREFIX);
        if (!unit || strncmp(unit, UNIT_NAME_PREFIX, prefix) != 0)
                return false;
        const char *service = unit + prefix, *at = strrchr(service, '@');
        if (!at || at == service || (size_t)(at - service) > LII_SERVICE_NAME_MAX)
                return false;
        char name[LII_SERVICE_NAME_MAX + 1];
        memcpy(name, service, (size_t)(at - service));
        name[at - service] = '\0';
        if (!service_name_is_valid(name) || at[1] < '1' || at[1] > '9')
                return false;
        errno = 0;
        char *end;
        unsigned long long generation = strtoull(at + 1, &end, 10);
        if (errno != 0 || strcmp(end, suffix) != 0)
                return false;
        memcpy(ret_service, name, sizeof name);
        *ret_generation = generation;
        return true;
}

bool unit_name_parse(const char *unit, char ret_service[static LII_SERVICE_NAME_MAX + 1],
                     uint64_t *ret_generation)
{
        return parse_with_suffix(unit, ".service", ret_service, ret_generation);
}

bool unit_name_parse_socket(const char *unit, char ret_service[static LII_SERVICE_NAME_MAX + 1],
                            uint64_t *ret_generation)
{
        return parse_with_suffix(unit, ".socket", ret_service, ret_generation);
}
