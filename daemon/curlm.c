/* The curl multi ↔ libuv bridge; see curlm.h. */
#include "curlm.h"

#include "util.h"

struct curlm {
        uv_loop_t *loop;
        CURLM *multi;
        uv_timer_t timer;
        struct transfer *transfers; /* running ones, so that curlm_free can abort them */
};

struct transfer {
        CURL *easy;
        curlm_done_cb cb;
        void *userdata;
        struct transfer *prev, *next;
};

static void transfer_unlink(struct curlm *m, struct transfer *t)
{
        if (t->prev)
                t->prev->next = t->next;
        else
                m->transfers = t->next;
        if (t->next)
                t->next->prev = t->prev;
        curl_multi_remove_handle(m->multi, t->easy);
        curl_easy_setopt(t->easy, CURLOPT_PRIVATE, NULL);
}

/* One per socket curl watches; freed in its close callback. */
struct sock {
        uv_poll_t poll;
        struct curlm *m;
        curl_socket_t fd;
};

static void check_done(struct curlm *m)
{
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m->multi, &left))) {
                if (msg->msg != CURLMSG_DONE)
                        continue;
                CURL *easy = msg->easy_handle;
                CURLcode result = msg->data.result;
                struct transfer *t = NULL;
                curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
                if (!t)
                        continue;
                transfer_unlink(m, t);
                t->cb(easy, result, t->userdata);
                free(t);
        }
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
        struct sock *s = handle->data;
        int flags = 0;
        if (status < 0)
                flags = CURL_CSELECT_ERR;
        else {
                if (events & UV_READABLE)
                        flags |= CURL_CSELECT_IN;
                if (events & UV_WRITABLE)
                        flags |= CURL_CSELECT_OUT;
        }
        struct curlm *m = s->m;
        int running;
        curl_multi_socket_action(m->multi, s->fd, flags, &running);
        check_done(m);
}

static void on_timer(uv_timer_t *timer)
{
        struct curlm *m = container_of(timer, struct curlm, timer);
        int running;
        curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        check_done(m);
}

static void on_sock_closed(uv_handle_t *h)
{
        free(h->data);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
        struct curlm *m = userp;
        struct sock *s = socketp;
        if (what == CURL_POLL_REMOVE) {
                if (s) {
                        uv_poll_stop(&s->poll);
                        uv_close((uv_handle_t *)&s->poll, on_sock_closed);
                        curl_multi_assign(m->multi, fd, NULL);
                }
                return 0;
        }
        if (!s) {
                s = xcalloc(1, sizeof *s);
                s->m = m;
                s->fd = fd;
                if (uv_poll_init_socket(m->loop, &s->poll, fd) < 0) {
                        free(s);
                        return -1;
                }
                s->poll.data = s;
                curl_multi_assign(m->multi, fd, s);
        }
        int events = 0;
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= UV_READABLE;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= UV_WRITABLE;
        uv_poll_start(&s->poll, events, on_poll);
        return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
        struct curlm *m = userp;
        if (timeout_ms < 0)
                uv_timer_stop(&m->timer);
        else
                uv_timer_start(&m->timer, on_timer, (uint64_t)timeout_ms, 0);
        return 0;
}

int curlm_new(uv_loop_t *loop, struct curlm **ret)
{
        struct curlm *m = xcalloc(1, sizeof *m);
        m->loop = loop;
        m->multi = curl_multi_init();
        if (!m->multi) {
                free(m);
                return -ENOMEM;
        }
        uv_timer_init(loop, &m->timer);
        curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
        curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
        curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
        *ret = m;
        return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
        free(container_of((uv_timer_t *)h, struct curlm, timer));
}

struct curlm *curlm_free(struct curlm *m)
{
        if (!m)
                return NULL;
        /* Removing the handles makes curl call socket_cb with CURL_POLL_REMOVE
         * for each of their sockets, which closes our polls. */
        while (m->transfers)
                curlm_remove(m, m->transfers->easy);
        curl_multi_cleanup(m->multi);
        uv_close((uv_handle_t *)&m->timer, on_timer_closed);
        return NULL;
}

int curlm_add(struct curlm *m, CURL *easy, curlm_done_cb cb, void *userdata)
{
        struct transfer *t = xcalloc(1, sizeof *t);
        t->easy = easy;
        t->cb = cb;
        t->userdata = userdata;
        curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
        CURLMcode mc = curl_multi_add_handle(m->multi, easy);
        if (mc != CURLM_OK) {
                curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
                free(t);
                return mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
        }
        t->next = m->transfers;
        if (t->next)
                t->next->prev = t;
        m->transfers = t;
        return 0;
}

void curlm_remove(struct curlm *m, CURL *easy)
{
        struct transfer *t = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
        if (!t)
                return;
        transfer_unlink(m, t);
        free(t);
}
