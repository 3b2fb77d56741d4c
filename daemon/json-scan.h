/* Strict JSON for texts whose bytes are signed (the desired-state
 * document), so that they mean one thing only, whichever parser reads
 * them; and how errors name a place in such a text: "services.hello.env.X",
 * "services.hello.exec[2]". */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

/* The longest excerpt of a key (or a name) chosen by whoever wrote the
 * text that an error quotes; see escape_untrusted(). */
#define JSON_SCAN_QUOTE_MAX 64

struct json_scan_limits {
        size_t max_bytes; /* the whole text */
        size_t max_depth; /* objects and arrays nested */
        size_t max_key;   /* bytes of one object key, as written */
};

/* Parses buf[0..len) with json-c, then refuses what json-c lets through
 * but other parsers read differently or not at all: duplicate keys (json-c
 * keeps the last one), strings that are not strict UTF-8 (json_string_check())
 * or hold a NUL (json-c cuts keys short at one), single-quoted strings, raw
 * control characters in strings, NaN and Infinity. Errors read "path:
 * reason", where root names the whole text ("document") and prefix is put
 * before the paths of keys within it. Returns -EFBIG for a text over
 * max_bytes, -EBADMSG for anything else refused. */
int json_scan_parse(const char *buf, size_t len, const struct json_scan_limits *limits,
                    const char *root, const char *prefix, json_object **ret, char **ret_error);

/* The path of member key under parent ("parent.key", or "key" when parent
 * is ""), with key escaped and cut short by escape_untrusted(). */
char *json_scan_path_key(const char *parent, const char *key);
/* The path of element i of the array at parent: "parent[i]". */
char *json_scan_path_index(const char *parent, size_t i);
