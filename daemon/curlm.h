/* libcurl's multi interface driven by the libuv loop: one uv_poll_t per
 * socket curl asks about (CURLMOPT_SOCKETFUNCTION) and one uv_timer_t for
 * curl's timeout (CURLMOPT_TIMERFUNCTION). Every HTTP(S) transfer of liid
 * goes through it: health probes, and (through http.h) the desired-state
 * document, signatures and artifacts. */
#pragma once

#include <curl/curl.h>
#include <uv.h>

struct curlm;

/* The transfer finished (or failed); the easy handle has been removed from
 * the multi handle and belongs to the caller again. */
typedef void (*curlm_done_cb)(CURL *easy, CURLcode result, void *userdata);

int curlm_new(uv_loop_t *loop, struct curlm **ret);
/* Aborts running transfers without calling their callbacks. The uv handles
 * close asynchronously: run the loop afterwards to release them. */
struct curlm *curlm_free(struct curlm *m);

/* Starts a transfer; cb is called once, later, from the loop. The caller
 * keeps ownership of easy and must not use CURLOPT_PRIVATE. */
int curlm_add(struct curlm *m, CURL *easy, curlm_done_cb cb, void *userdata);
/* Aborts a transfer; its callback is not called. */
void curlm_remove(struct curlm *m, CURL *easy);
