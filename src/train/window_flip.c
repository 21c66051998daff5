/* WindowAndFlip(window_shape, randomize = [], randomize_once = [], center = [], rng =
 * [2013, 2, 20], pad_randomized = 0, flip = True) (Pylearn2's
 * train_extensions/window_flip.py WindowAndFlip / WindowAndFlipC01B): data augmentation for
 * image datasets (datasets with a topology, Pylearn2's Conv2DSpace data; mltrain holds images
 * in b01c order whatever axes the job names).
 *
 * setup (before the run reads the datasets' shape, so the model sees window_shape images):
 *   - `center` datasets keep their central window (Pylearn2's CentralWindow: row offset
 *     (rows - window_rows) // 2, column offset likewise);
 *   - `randomize` and `randomize_once` datasets keep a copy of their images, zero-padded by
 *     pad_randomized pixels on each side, and become draw 0: every image replaced by a window
 *     at a random position of its padded original, mirrored left-right with probability 1/2
 *     when flip is true.
 * on_monitor (after every monitor call, the initial one included): the `randomize` datasets
 *     get the next draw, so epoch e trains on draw e (randomize_once datasets keep draw 0).
 *
 * Draw k of dataset j of the lists, image i: one Philox4x32-10 block, key = the 64 bits of the
 * folded rng seed, counter = (i low, i high, k, j + 1 (+ 0x10000 for randomize_once)):
 * row offset = u0 mod (padded rows - window_rows + 1), column offset = u1 mod (...), mirrored
 * when flip and (u2 & 1). Pylearn2's own draws (NumPy's generator then C's rand_r) are not
 * reproduced; the distribution is the same. A draw is a function of (seed, dataset, k, image)
 * only, so the checkpoint keeps just k ("extension/<i>/draws") and a resumed run recomputes
 * the same windows. A dataset listed in several lists, or twice, is an error, as is a window
 * larger than a (padded) image. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train_impl.h"

/* Largest window side and padding (pixels): keeps every size product far from overflow. */
#define WF_MAX_SIDE 65536

typedef struct wf_set {
    mt_dataset *d;       /* borrowed (builder) */
    bool once;           /* randomize_once */
    float *orig;         /* padded originals: n x rows x cols x ch (owned) */
    int64_t n, rows, cols, ch;
} wf_set;

typedef struct window_flip {
    mt__extension base;
    int64_t wr, wc;
    int64_t pad;
    bool flip;
    uint64_t seed;
    int32_t n_center;
    mt_dataset **center; /* owned array, borrowed datasets */
    int32_t n_rand;
    wf_set *rand;        /* randomize then randomize_once */
    int64_t draws;       /* draw the `randomize` datasets hold */
    bool set_up;
} window_flip;

/* Image i of the draw into out (wr x wc x ch). */
static void draw_window(const window_flip *w, const wf_set *s, int32_t j, int64_t k, int64_t i,
                        float *out)
{
    uint32_t ctr[4] = {(uint32_t)i, (uint32_t)((uint64_t)i >> 32), (uint32_t)k,
                       (uint32_t)(j + 1) + (s->once ? 0x10000u : 0u)};
    uint32_t key[2] = {(uint32_t)w->seed, (uint32_t)(w->seed >> 32)};
    uint32_t u[4];
    mt_philox4x32(ctr, key, u);
    int64_t r0 = (int64_t)(u[0] % (uint32_t)(s->rows - w->wr + 1));
    int64_t c0 = (int64_t)(u[1] % (uint32_t)(s->cols - w->wc + 1));
    bool mirror = w->flip && (u[2] & 1u);
    const float *img = s->orig + i * s->rows * s->cols * s->ch;
    for (int64_t r = 0; r < w->wr; r++)
        for (int64_t c = 0; c < w->wc; c++) {
            int64_t sc = c0 + (mirror ? w->wc - 1 - c : c);
            memcpy(out + (r * w->wc + c) * s->ch, img + ((r0 + r) * s->cols + sc) * s->ch,
                   (size_t)s->ch * sizeof(float));
        }
}

static void draw_all(const window_flip *w, const wf_set *s, int32_t j, int64_t k, float *X)
{
    int64_t per = w->wr * w->wc * s->ch;
    for (int64_t i = 0; i < s->n; i++) draw_window(w, s, j, k, i, X + i * per);
}

/* The dataset's images (materialized) and their size; ERR_INVALID without a topology. */
static mt_status image_info(const window_flip *w, mt_dataset *d, mt_dataset_info *info)
{
    mt_status st = mt_dataset_materialize(d);
    if (st) return mt_err_prefix(st, "WindowAndFlip: ");
    mt_dataset_get_info(d, info);
    if (info->topo_ndim != 3)
        return mt_cfg_error(MT_ERR_INVALID, w->base.loc,
                            "WindowAndFlip: dataset %s has no image shape (rows, cols, "
                            "channels): it needs image data",
                            info->name ? info->name : "?");
    return MT_OK;
}

static mt_status window_error(const window_flip *w, const mt_dataset_info *info, int64_t rows,
                              int64_t cols)
{
    return mt_cfg_error(MT_ERR_SHAPE, w->base.loc,
                        "WindowAndFlip: window %lldx%lld is larger than the %lldx%lld images of "
                        "%s",
                        (long long)w->wr, (long long)w->wc, (long long)rows, (long long)cols,
                        info->name ? info->name : "?");
}

static mt_status crop_center(const window_flip *w, mt_dataset *d)
{
    mt_dataset_info info;
    mt_status st = image_info(w, d, &info);
    if (st) return st;
    int64_t rows = info.topo[0], cols = info.topo[1], ch = info.topo[2];
    if (w->wr > rows || w->wc > cols) return window_error(w, &info, rows, cols);
    float *X = mt_malloc((size_t)(info.n * w->wr * w->wc * ch) * sizeof(float) + 1);
    if (!X) return mt_err_set(MT_ERR_NOMEM, "WindowAndFlip: %s", info.name);
    const float *src = mt_dataset_X(d);
    int64_t r0 = (rows - w->wr) / 2, c0 = (cols - w->wc) / 2;
    for (int64_t i = 0; i < info.n; i++)
        for (int64_t r = 0; r < w->wr; r++)
            memcpy(X + ((i * w->wr + r) * w->wc) * ch,
                   src + ((i * rows + r0 + r) * cols + c0) * ch,
                   (size_t)(w->wc * ch) * sizeof(float));
    int64_t topo[3] = {w->wr, w->wc, ch};
    return mt_dataset_take_images(d, topo, X);
}

/* Keeps the padded originals of s->d and makes it draw `k`. */
static mt_status start_random(window_flip *w, wf_set *s, int32_t j, int64_t k)
{
    mt_dataset_info info;
    mt_status st = image_info(w, s->d, &info);
    if (st) return st;
    int64_t p = w->pad;
    s->n = info.n;
    s->rows = info.topo[0] + 2 * p;
    s->cols = info.topo[1] + 2 * p;
    s->ch = info.topo[2];
    if (w->wr > s->rows || w->wc > s->cols) return window_error(w, &info, s->rows, s->cols);
    int64_t norig, nwin;
    if (__builtin_mul_overflow(s->n, s->rows, &norig) ||
        __builtin_mul_overflow(norig, s->cols, &norig) ||
        __builtin_mul_overflow(norig, s->ch, &norig) ||
        (uint64_t)norig > mt_data_max_bytes() / sizeof(float))
        return mt_err_set(MT_ERR_RANGE,
                          "WindowAndFlip: %s padded by %lld pixels needs %lld x %lld x %lld x "
                          "%lld floats, more than MLTRAIN_DATA_MAX_BYTES allows",
                          info.name, (long long)p, (long long)s->n, (long long)s->rows,
                          (long long)s->cols, (long long)s->ch);
    nwin = s->n * w->wr * w->wc * s->ch; /* <= norig: the window fits in the padded image */
    s->orig = mt_calloc((size_t)norig + 1, sizeof(float));
    float *X = mt_malloc((size_t)nwin * sizeof(float) + 1);
    if (!s->orig || !X) {
        mt_free(X);
        return mt_err_set(MT_ERR_NOMEM, "WindowAndFlip: %s", info.name);
    }
    const float *src = mt_dataset_X(s->d);
    int64_t row = info.topo[1] * s->ch;
    for (int64_t i = 0; i < s->n; i++)
        for (int64_t r = 0; r < info.topo[0]; r++)
            memcpy(s->orig + ((i * s->rows + r + p) * s->cols + p) * s->ch,
                   src + (i * info.topo[0] + r) * row, (size_t)row * sizeof(float));
    draw_all(w, s, j, k, X);
    int64_t topo[3] = {w->wr, w->wc, s->ch};
    return mt_dataset_take_images(s->d, topo, X);
}

/* The `randomize` datasets take draw k (in place: the shape stays). */
static void redraw(window_flip *w, int64_t k)
{
    for (int32_t j = 0; j < w->n_rand; j++)
        if (!w->rand[j].once) draw_all(w, &w->rand[j], j, k, mt_dataset_X_mut(w->rand[j].d));
    w->draws = k;
}

static mt_status wf_setup(mt__extension *e, mt__run *run)
{
    window_flip *w = (window_flip *)e;
    if (w->set_up) return MT_OK; /* the datasets were cropped already (a later phase) */
    mt_status st = MT_OK;
    for (int32_t i = 0; i < w->n_center && !st; i++) st = crop_center(w, w->center[i]);
    for (int32_t j = 0; j < w->n_rand && !st; j++) st = start_random(w, &w->rand[j], j, 0);
    if (st) return st;
    w->draws = 0;
    w->set_up = true;
    return MT_OK;
}

static mt_status wf_on_monitor(mt__extension *e, mt__run *run, bool *cont)
{
    window_flip *w = (window_flip *)e;
    redraw(w, w->draws + 1);
    return MT_OK;
}

static mt_status wf_load(mt__extension *e, const char *prefix, const mt_ckpt *c)
{
    window_flip *w = (window_flip *)e;
    redraw(w, w->draws); /* the `draws` field was just read */
    return MT_OK;
}

static const mt__ckpt_field wf_fields[] = {
    MT__FIELD(window_flip, draws, MT__FIELD_I64, "draws")};

static const mt__extension_ops wf_ops = {.name = "WindowAndFlip",
                                         .setup = wf_setup,
                                         .on_monitor = wf_on_monitor,
                                         .load_state = wf_load,
                                         .fields = wf_fields,
                                         .n_fields = 1};

static void wf_destroy(void *obj)
{
    window_flip *w = obj;
    if (!w) return;
    for (int32_t j = 0; j < w->n_rand; j++) mt_free(w->rand[j].orig);
    mt_free(w->rand);
    mt_free(w->center);
    mt_free(w);
}

/* Appends the datasets of list `key` (a list of datasets, or one). */
static mt_status add_list(window_flip *w, mt_cfg_builder *b, const mt_cfg_node *node,
                          const char *key, int kind)
{
    const mt_cfg_node *v = mt_cfg_get(node, key);
    if (!v || v->kind == MT_CFG_NULL) return MT_OK;
    int32_t n = v->kind == MT_CFG_LIST ? v->n : 1;
    for (int32_t i = 0; i < n; i++) {
        void *obj = NULL;
        const mt_cfg_node *item = v->kind == MT_CFG_LIST ? v->items[i] : v;
        mt_status st = mt_cfg_build(b, item, "dataset", &obj, NULL);
        if (st) return st;
        for (int32_t k = 0; k < w->n_center + w->n_rand; k++)
            if ((k < w->n_center ? w->center[k] : w->rand[k - w->n_center].d) == obj)
                return mt_cfg_error(MT_ERR_INVALID, item->loc,
                                    "WindowAndFlip: a dataset is listed twice (in %s and "
                                    "before)",
                                    key);
        if (kind == 0) {
            w->center[w->n_center++] = obj;
        } else {
            w->rand[w->n_rand].d = obj;
            w->rand[w->n_rand++].once = kind == 2;
        }
    }
    return MT_OK;
}

static int32_t list_len(const mt_cfg_node *node, const char *key)
{
    const mt_cfg_node *v = mt_cfg_get(node, key);
    if (!v || v->kind == MT_CFG_NULL) return 0;
    return v->kind == MT_CFG_LIST ? v->n : 1;
}

static mt_status build_wf(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    window_flip *w = mt_calloc(1, sizeof(*w));
    if (!w) return mt_err_set(MT_ERR_NOMEM, "WindowAndFlip");
    w->base.ops = &wf_ops;
    w->base.loc = node->loc;
    int64_t shape[4] = {0}, seeds[8];
    int32_t ns = 0, nseed = 0;
    mt_status st;
    if ((st = mt_cfg_get_ints(node, "window_shape", 4, shape, &ns)) ||
        (st = mt_cfg_get_int(node, "pad_randomized", 0, &w->pad)) ||
        (st = mt_cfg_get_bool(node, "flip", true, &w->flip)))
        goto fail;
    if (ns != 2 || shape[0] < 1 || shape[1] < 1 || shape[0] > WF_MAX_SIDE ||
        shape[1] > WF_MAX_SIDE) {
        st = mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(node, "window_shape"),
                          "WindowAndFlip: window_shape must be [rows, cols] with both in "
                          "[1, %d]", WF_MAX_SIDE);
        goto fail;
    }
    w->wr = shape[0];
    w->wc = shape[1];
    if (w->pad < 0 || w->pad > WF_MAX_SIDE) {
        st = mt_cfg_error(MT_ERR_RANGE, mt_cfg_key_loc(node, "pad_randomized"),
                          "WindowAndFlip: pad_randomized must be >= 0 and <= %d", WF_MAX_SIDE);
        goto fail;
    }
    const mt_cfg_node *rng = mt_cfg_get(node, "rng");
    if (rng && rng->kind != MT_CFG_NULL) {
        if ((st = mt_cfg_get_ints(node, "rng", 8, seeds, &nseed))) goto fail;
    } else {
        seeds[0] = 2013, seeds[1] = 2, seeds[2] = 20;
        nseed = 3;
    }
    w->seed = mt__algo_seed_of(seeds, nseed);
    int32_t nc = list_len(node, "center");
    int32_t nr = list_len(node, "randomize") + list_len(node, "randomize_once");
    w->center = mt_calloc((size_t)nc + 1, sizeof(*w->center));
    w->rand = mt_calloc((size_t)nr + 1, sizeof(*w->rand));
    if (!w->center || !w->rand) {
        st = mt_err_set(MT_ERR_NOMEM, "WindowAndFlip");
        goto fail;
    }
    if ((st = add_list(w, b, node, "center", 0)) || (st = add_list(w, b, node, "randomize", 1)) ||
        (st = add_list(w, b, node, "randomize_once", 2)))
        goto fail;
    if (nc + nr == 0)
        mt_log(MT_LOG_WARN, "%s:%d: WindowAndFlip without any dataset does nothing",
               node->loc.file, (int)node->loc.line);
    *out = w;
    return MT_OK;
fail:
    wf_destroy(w);
    return st;
}

static const mt_cfg_key wf_keys[] = {
    {"window_shape", MT_CFG_T_INTS, true, false, NULL, false, "[rows, cols] of the windows"},
    {"randomize", MT_CFG_T_OBJ_OR_LIST, false, true, "dataset", false,
     "datasets given a random window (and flip) at every epoch"},
    {"randomize_once", MT_CFG_T_OBJ_OR_LIST, false, true, "dataset", false,
     "datasets given a random window (and flip) once, at the start"},
    {"center", MT_CFG_T_OBJ_OR_LIST, false, true, "dataset", false,
     "datasets cropped to their central window once (validation, test)"},
    {"rng", MT_CFG_T_INTS, false, true, NULL, false, "seed (default [2013, 2, 20])"},
    {"pad_randomized", MT_CFG_T_INT, false, false, NULL, false,
     "zero padding on each side of the randomized images (0)"},
    {"flip", MT_CFG_T_BOOL, false, false, NULL, false, "mirror left-right with probability 1/2"},
    {NULL, 0, false, false, NULL, false, NULL}};

static const char *const wf_aliases[] = {"pylearn2.train_extensions.window_flip.WindowAndFlip",
                                         "pylearn2.train_extensions.window_flip.WindowAndFlipC01B",
                                         "WindowAndFlipC01B", NULL};

static const mt_component wf_component = {
    "WindowAndFlip", "extension", wf_aliases, wf_keys, false,
    "random crops and flips of image datasets every epoch, central crops of the others",
    build_wf, wf_destroy, NULL};

mt_status mt__train_register_window_flip(mt_cfg_registry *r)
{
    return mt_cfg_registry_add(r, &wf_component);
}
