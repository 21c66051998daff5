/* train_floor: the hand-written C training step (see train_floor.h). */
#include "train_floor.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define FLOOR_MAX_LAYERS 4

struct train_floor {
    int nl;
    int64_t s[FLOOR_MAX_LAYERS + 1], batch, n_rows, pos;
    float *data;    /* [n_rows, s[0]] */
    int64_t *lab;   /* [n_rows] */
    int64_t *perm;  /* visiting order */
    float *x;       /* the batch [batch, s[0]] */
    int64_t *y;     /* its labels */
    float *W[FLOOR_MAX_LAYERS], *b[FLOOR_MAX_LAYERS], *vW[FLOOR_MAX_LAYERS], *vb[FLOOR_MAX_LAYERS];
    float *gW[FLOOR_MAX_LAYERS], *gb[FLOOR_MAX_LAYERS];
    float *h[FLOOR_MAX_LAYERS]; /* layer outputs [batch, s[l+1]] (the last: logits) */
    float *d[FLOOR_MAX_LAYERS]; /* gradients w.r.t. the pre-activations */
    float lr, mu;
};

static void shuffle(int64_t *p, int64_t n, uint64_t *state)
{
    for (int64_t i = n - 1; i > 0; i--) {
        *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t j = (int64_t)((*state >> 33) % (uint64_t)(i + 1));
        int64_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
}

static float *zeros(int64_t n)
{
    float *p = bench_xmalloc((size_t)n * sizeof(float));
    memset(p, 0, (size_t)n * sizeof(float));
    return p;
}

train_floor *train_floor_new(const int64_t *sizes, int n_layers, int64_t batch, int64_t n_rows)
{
    if (n_layers < 1 || n_layers > FLOOR_MAX_LAYERS || batch < 1 || n_rows < batch) return NULL;
    train_floor *t = bench_xmalloc(sizeof(*t));
    memset(t, 0, sizeof(*t));
    t->nl = n_layers;
    t->batch = batch;
    t->n_rows = n_rows;
    t->lr = 0.01f;
    t->mu = 0.5f;
    memcpy(t->s, sizes, (size_t)(n_layers + 1) * sizeof(int64_t));
    t->data = bench_xmalloc((size_t)(n_rows * sizes[0]) * sizeof(float));
    bench_fill_uniform_f32(t->data, (size_t)(n_rows * sizes[0]), 11, 0.0f, 1.0f);
    t->lab = bench_xmalloc((size_t)n_rows * sizeof(int64_t));
    t->perm = bench_xmalloc((size_t)n_rows * sizeof(int64_t));
    for (int64_t i = 0; i < n_rows; i++) {
        t->lab[i] = i % sizes[n_layers];
        t->perm[i] = i;
    }
    t->x = bench_xmalloc((size_t)(batch * sizes[0]) * sizeof(float));
    t->y = bench_xmalloc((size_t)batch * sizeof(int64_t));
    for (int l = 0; l < n_layers; l++) {
        int64_t in = sizes[l], out = sizes[l + 1];
        t->W[l] = bench_xmalloc((size_t)(in * out) * sizeof(float));
        bench_fill_uniform_f32(t->W[l], (size_t)(in * out), 50 + (uint64_t)l, -0.05f, 0.05f);
        t->b[l] = zeros(out);
        t->vW[l] = zeros(in * out);
        t->vb[l] = zeros(out);
        t->gW[l] = zeros(in * out);
        t->gb[l] = zeros(out);
        t->h[l] = zeros(batch * out);
        t->d[l] = zeros(batch * out);
    }
    t->pos = n_rows; /* the first step shuffles */
    return t;
}

/* v = mu v - lr g; p = p + v */
static void momentum(float *restrict p, float *restrict v, const float *restrict g, int64_t n,
                     float lr, float mu)
{
    for (int64_t i = 0; i < n; i++) {
        float nv = mu * v[i] - lr * g[i];
        v[i] = nv;
        p[i] += nv;
    }
}

/* Softmax of each row of z [B, k], its mean crossentropy against y, and the gradient of that
 * mean w.r.t. z into d: (softmax - onehot) / B. */
static float softmax_xent(const float *z, const int64_t *y, float *d, int64_t B, int64_t k)
{
    double cost = 0;
    float inv = 1.0f / (float)B;
    for (int64_t i = 0; i < B; i++) {
        const float *zi = z + i * k;
        float *di = d + i * k, m = zi[0], sum = 0;
        for (int64_t j = 1; j < k; j++)
            m = zi[j] > m ? zi[j] : m;
        for (int64_t j = 0; j < k; j++) {
            di[j] = expf(zi[j] - m);
            sum += di[j];
        }
        cost += (double)(logf(sum) + m - zi[y[i]]);
        float r = inv / sum;
        for (int64_t j = 0; j < k; j++)
            di[j] *= r;
        di[y[i]] -= inv;
    }
    return (float)(cost / (double)B);
}

float train_floor_step(train_floor *t)
{
    int64_t B = t->batch, nl = t->nl;
    uint64_t rng = 2012 + (uint64_t)t->pos;
    if (t->pos + B > t->n_rows) {
        shuffle(t->perm, t->n_rows, &rng);
        t->pos = 0;
    }
    size_t row = (size_t)t->s[0] * sizeof(float);
    for (int64_t i = 0; i < B; i++) {
        int64_t r = t->perm[t->pos + i];
        memcpy(t->x + (size_t)i * (size_t)t->s[0], t->data + (size_t)r * (size_t)t->s[0], row);
        t->y[i] = t->lab[r];
    }
    t->pos += B;
    /* forward */
    const float *in = t->x;
    for (int l = 0; l < nl; l++) {
        int64_t k = t->s[l], n = t->s[l + 1];
        float *h = t->h[l];
        for (int64_t i = 0; i < B; i++)
            memcpy(h + i * n, t->b[l], (size_t)n * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)n, (int)k, 1.0f, in,
                    (int)k, t->W[l], (int)n, 1.0f, h, (int)n);
        if (l < nl - 1)
            for (int64_t i = 0; i < B * n; i++)
                h[i] = h[i] > 0 ? h[i] : 0;
        in = h;
    }
    float cost = softmax_xent(t->h[nl - 1], t->y, t->d[nl - 1], B, t->s[nl]);
    /* backward */
    for (int l = (int)nl - 1; l >= 0; l--) {
        int64_t k = t->s[l], n = t->s[l + 1];
        const float *a = l ? t->h[l - 1] : t->x, *d = t->d[l];
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)n, (int)B, 1.0f, a,
                    (int)k, d, (int)n, 0.0f, t->gW[l], (int)n);
        float *gb = t->gb[l];
        memset(gb, 0, (size_t)n * sizeof(float));
        for (int64_t i = 0; i < B; i++)
            for (int64_t j = 0; j < n; j++)
                gb[j] += d[i * n + j];
        if (l > 0) {
            float *dp = t->d[l - 1];
            const float *hp = t->h[l - 1];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)k, (int)n, 1.0f, d,
                        (int)n, t->W[l], (int)n, 0.0f, dp, (int)k);
            for (int64_t i = 0; i < B * k; i++)
                dp[i] = hp[i] > 0 ? dp[i] : 0;
        }
    }
    for (int l = 0; l < nl; l++) {
        momentum(t->W[l], t->vW[l], t->gW[l], t->s[l] * t->s[l + 1], t->lr, t->mu);
        momentum(t->b[l], t->vb[l], t->gb[l], t->s[l + 1], t->lr, t->mu);
    }
    return cost;
}

void train_floor_free(train_floor *t)
{
    if (!t) return;
    for (int l = 0; l < t->nl; l++) {
        mt_free(t->W[l]);
        mt_free(t->b[l]);
        mt_free(t->vW[l]);
        mt_free(t->vb[l]);
        mt_free(t->gW[l]);
        mt_free(t->gb[l]);
        mt_free(t->h[l]);
        mt_free(t->d[l]);
    }
    mt_free(t->data);
    mt_free(t->lab);
    mt_free(t->perm);
    mt_free(t->x);
    mt_free(t->y);
    mt_free(t);
}
