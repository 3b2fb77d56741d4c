/* Ports for instances whose spec says "port": "auto". */
#pragma once

struct state;

/* A loopback TCP port that nothing has bound and that no instance lii
 * knows of (current, pending or previous) was given: two rollouts that run
 * at once never share a port. Returns the port, or a negative errno
 * (-EADDRINUSE when every port the kernel offered was taken by lii). */
int port_pick_free(const struct state *st);
