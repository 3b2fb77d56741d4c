/* The names of the systemd units lii starts, the one place that spells
 * them: "lii-<service>@<generation>.service" for an instance and
 * "lii-<service>@<generation>-check-<n>.service" for the n-th exec health
 * check of one, and "lii-<service>@<generation>.socket" for the sockets of
 * an instance whose service lists addresses to listen on. Both start with UNIT_NAME_PREFIX, so that
 * one listing finds every unit lii started; a check's name is not an instance's. They are what
 * `journalctl -u` and `systemctl` show, and the "unit" of the API. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "lii-proto.h"

#define UNIT_NAME_PREFIX "lii-"
/* Room for either name with the longest service name and the largest
 * generation and check number, NUL included. */
#define UNIT_NAME_SIZE                                                                             \
        (sizeof(UNIT_NAME_PREFIX) - 1 + LII_SERVICE_NAME_MAX +                                     \
         sizeof("@18446744073709551615-check-4294967295.service"))

/* Writes the name of the instance of service at generation into buf and
 * returns buf. service must be valid (service_name_is_valid()). */
char *unit_name_instance(char buf[static UNIT_NAME_SIZE], const char *service, uint64_t generation);
/* Writes the name of the socket unit of that instance, for a service that
 * lists addresses to listen on: "lii-<service>@<generation>.socket". */
char *unit_name_socket(char buf[static UNIT_NAME_SIZE], const char *service, uint64_t generation);
/* Writes the name of the n-th exec health check of that instance. */
char *unit_name_check(char buf[static UNIT_NAME_SIZE], const char *service, uint64_t generation,
                      unsigned n);
/* Whether unit is the name of an instance, exactly as unit_name_instance()
 * writes it (a valid service name, a generation from 1 without leading
 * zeros or sign); when it is, its service and generation. */
bool unit_name_parse(const char *unit, char ret_service[static LII_SERVICE_NAME_MAX + 1],
                     uint64_t *ret_generation);
/* The same for the name of an instance's socket unit. */
bool unit_name_parse_socket(const char *unit, char ret_service[static LII_SERVICE_NAME_MAX + 1],
                            uint64_t *ret_generation);
