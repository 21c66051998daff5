/* Point-to-point control messages (mt_comm_send_host / mt_comm_recv_host): under mpiexec with
 * 2 and 4 ranks (label mpi) and on the local backend (label unit). Every rank sends to every
 * other rank; receives from any rank and from a given rank; a tag that never comes times out
 * without consuming the message that did; messages are independent of collectives running
 * meanwhile; argument errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mltrain/comm.h"
#include "mt_test.h"

static mt_comm *world(const char *backend)
{
    mt_comm_options o;
    mt_comm_options_init(&o);
    o.backend = backend;
    o.timeout_s = 60;
    mt_comm *c = NULL;
    MT_CHECK_OK(mt_comm_world(&c, &o));
    return c;
}

MT_TEST(p2p_local_has_no_peer)
{
    mt_comm *c = world("local");
    int x = 1;
    MT_CHECK_ERR(mt_comm_send_host(c, 0, 3, &x, sizeof x), MT_ERR_UNSUPPORTED, "no peer");
    void *data = NULL;
    size_t n = 9;
    MT_CHECK_ERR(mt_comm_recv_host(c, -1, 3, 0.01, &data, &n, NULL, NULL), MT_ERR_TIMEOUT,
                 "no message (tag 3) from any rank");
    MT_CHECK(data == NULL && n == 0);
    MT_CHECK_ERR(mt_comm_send_host(c, 1, 3, &x, sizeof x), MT_ERR_RANGE, "destination 1");
    MT_CHECK_ERR(mt_comm_send_host(c, 0, 40000, &x, sizeof x), MT_ERR_RANGE, "tag 40000");
    MT_CHECK_ERR(mt_comm_recv_host(c, 5, 1, 0, &data, &n, NULL, NULL), MT_ERR_RANGE, "source 5");
    mt_comm_free(c);
}

MT_TEST(p2p_all_pairs_any_source)
{
    mt_comm *c = world("mpi");
    int32_t r = mt_comm_rank(c), n = mt_comm_size(c);
    if (n < 2) MT_SKIP("needs 2 ranks or more");
    char msg[64];
    for (int32_t d = 0; d < n; d++) {
        if (d == r) continue;
        snprintf(msg, sizeof msg, "from %d to %d", (int)r, (int)d);
        MT_CHECK_OK(mt_comm_send_host(c, d, 7, msg, strlen(msg)));
    }
    bool seen[64] = {false};
    for (int32_t k = 0; k < n - 1; k++) {
        void *data = NULL;
        size_t len = 0;
        int32_t src = -1, tag = -1;
        MT_CHECK_OK(mt_comm_recv_host(c, -1, 7, 30, &data, &len, &src, &tag));
        MT_CHECK(src >= 0 && src < n && src != r && !seen[src]);
        seen[src] = true;
        MT_CHECK_EQ_INT(tag, 7);
        snprintf(msg, sizeof msg, "from %d to %d", (int)src, (int)r);
        MT_CHECK_EQ_INT((int64_t)len, (int64_t)strlen(msg));
        MT_CHECK_STR_EQ((const char *)data, msg); /* zero-terminated */
        mt_free(data);
    }
    MT_CHECK_OK(mt_comm_barrier(c));
    mt_comm_free(c);
}

MT_TEST(p2p_timeout_leaves_other_tags_and_runs_next_to_collectives)
{
    mt_comm *c = world("mpi");
    int32_t r = mt_comm_rank(c), n = mt_comm_size(c);
    if (n < 2) MT_SKIP("needs 2 ranks or more");
    if (r == 1) {
        int64_t v = 42;
        MT_CHECK_OK(mt_comm_send_host(c, 0, 11, &v, sizeof v));
    }
    /* a collective between the send and the receive does not disturb the message */
    double s = r;
    MT_CHECK_OK(mt_comm_allreduce_host(c, &s, 1, MT_FLOAT64, MT_REDUCE_SUM));
    MT_CHECK_CLOSE(s, n * (n - 1) / 2.0, 0, 0);
    if (r == 0) {
        void *data = NULL;
        size_t len = 0;
        /* tag 12 never comes: a timeout, and the tag-11 message stays */
        MT_CHECK_ERR(mt_comm_recv_host(c, 1, 12, 0.05, &data, &len, NULL, NULL), MT_ERR_TIMEOUT,
                     "from rank 1 within");
        MT_CHECK_OK(mt_comm_recv_host(c, 1, 11, 30, &data, &len, NULL, NULL));
        MT_CHECK_EQ_INT((int64_t)len, 8);
        int64_t v;
        memcpy(&v, data, sizeof v);
        MT_CHECK_EQ_INT(v, 42);
        mt_free(data);
        /* an empty message */
        MT_CHECK_OK(mt_comm_send_host(c, 1, 13, NULL, 0));
    } else if (r == 1) {
        void *data = NULL;
        size_t len = 5;
        MT_CHECK_OK(mt_comm_recv_host(c, 0, 13, 30, &data, &len, NULL, NULL));
        MT_CHECK_EQ_INT((int64_t)len, 0);
        MT_CHECK(data != NULL && ((char *)data)[0] == 0);
        mt_free(data);
    }
    MT_CHECK_OK(mt_comm_barrier(c));
    mt_comm_free(c);
}
