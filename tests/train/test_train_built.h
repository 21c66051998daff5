/* Building one train component from YAML text in a test (registry, document, builder kept
 * together so the objects live until built_free): shared by the train unit tests. */
#ifndef MT_TEST_TRAIN_BUILT_H
#define MT_TEST_TRAIN_BUILT_H

#include <string.h>

#include "mt_test.h"
#include "train_impl.h"

typedef struct built {
    mt_cfg_registry *reg;
    mt_cfg_doc *doc;
    mt_cfg_builder *b;
    void *obj;
} built;

/* Loads ("t.yaml"), validates and builds text as a component of `kind`; returns the first
 * failure (bt is always safe to built_free). */
static inline mt_status try_build(built *bt, const char *text, const char *kind)
{
    memset(bt, 0, sizeof(*bt));
    MT_CHECK_OK(mt_train_registry_new(&bt->reg));
    mt_cfg_options o;
    mt_cfg_options_init(&o);
    o.no_environment = true;
    mt_status st = mt_cfg_load_string(&bt->doc, text, strlen(text), "t.yaml", &o);
    if (!st) st = mt_cfg_validate(bt->reg, mt_cfg_doc_root(bt->doc), kind);
    if (!st) st = mt_cfg_builder_new(&bt->b, bt->reg);
    if (!st) st = mt_cfg_build(bt->b, mt_cfg_doc_root(bt->doc), kind, &bt->obj, NULL);
    return st;
}

static inline void build_yaml(built *bt, const char *text, const char *kind)
{
    mt_status st = try_build(bt, text, kind);
    if (st) mt_test_fail(__FILE__, __LINE__, "building %s: %s", text, mt_last_error());
}

static inline void built_free(built *bt)
{
    mt_cfg_builder_free(bt->b);
    mt_cfg_doc_free(bt->doc);
    mt_cfg_registry_free(bt->reg);
}

#endif /* MT_TEST_TRAIN_BUILT_H */
