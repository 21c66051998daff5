/* Helpers shared by the config tests: files written under the build directory
 * (MT_CONFIG_TEST_DIR/<case>/...), loading text with a clean environment, and walking a tree
 * by a path of keys and list indices. */
#ifndef MT_CONFIG_TEST_UTIL_H
#define MT_CONFIG_TEST_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "mltrain/config.h"
#include "mt_test.h"

#ifndef MT_CONFIG_TEST_DIR
#error "MT_CONFIG_TEST_DIR must be defined (tests/config/CMakeLists.txt)"
#endif

/* MT_CONFIG_TEST_DIR/<dir>/<name> (directories created); a static buffer per call slot. */
static inline const char *test_path(const char *dir, const char *name)
{
    static char bufs[8][1024];
    static int slot;
    char *b = bufs[slot++ & 7];
    snprintf(b, 1024, "%s/%s", MT_CONFIG_TEST_DIR, dir);
    if (mt_mkdirs(b, 0755) != MT_OK)
        mt_test_fail(__FILE__, __LINE__, "mkdirs %s: %s", b, mt_last_error());
    snprintf(b, 1024, "%s/%s/%s", MT_CONFIG_TEST_DIR, dir, name);
    char *slash = strrchr(b, '/');
    *slash = '\0';
    if (mt_mkdirs(b, 0755) != MT_OK)
        mt_test_fail(__FILE__, __LINE__, "mkdirs %s: %s", b, mt_last_error());
    *slash = '/';
    return b;
}

static inline void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) mt_test_fail(__FILE__, __LINE__, "cannot write %s: %s", path, strerror(errno));
    fwrite(text, 1, strlen(text), f);
    fclose(f);
}

static inline void opts_clean(mt_cfg_options *o)
{
    mt_cfg_options_init(o);
    o->no_environment = true;
}

/* Loads text (name "t.yaml"), failing the test on error. */
static inline mt_cfg_doc *load_ok_at(const char *file, int line, const char *text,
                                     const mt_cfg_options *o)
{
    mt_cfg_options d;
    opts_clean(&d);
    mt_cfg_doc *doc = NULL;
    mt_status st = mt_cfg_load_string(&doc, text, strlen(text), "t.yaml", o ? o : &d);
    if (st != MT_OK)
        mt_test_fail(file, line, "load failed: %s: %s\n--- text:\n%s", mt_status_name(st),
                     mt_last_error(), text);
    return doc;
}
#define LOAD_OK(text, o) load_ok_at(__FILE__, __LINE__, (text), (o))

/* Loads text expecting failure `code` with a message containing `needle`. */
static inline void load_err_at(const char *file, int line, const char *text,
                               const mt_cfg_options *o, mt_status code, const char *needle)
{
    mt_cfg_options d;
    opts_clean(&d);
    mt_cfg_doc *doc = NULL;
    mt_err_clear();
    mt_status st = mt_cfg_load_string(&doc, text, strlen(text), "t.yaml", o ? o : &d);
    if (st != code)
        mt_test_fail(file, line, "load returned %s (%s), expected %s\n--- text:\n%s",
                     mt_status_name(st), mt_last_error(), mt_status_name(code), text);
    if (doc) mt_test_fail(file, line, "failed load returned a document");
    if (needle && !strstr(mt_last_error(), needle))
        mt_test_fail(file, line, "message '%s' lacks '%s'", mt_last_error(), needle);
}
#define LOAD_ERR(text, o, code, needle)                                                            \
    load_err_at(__FILE__, __LINE__, (text), (o), (code), (needle))

/* Walks "a.b.0.c": keys of maps/objs, indices of lists, "~" = items[0] of a TAGGED. */
static inline const mt_cfg_node *at_path(const mt_cfg_node *n, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *tok = strtok(buf, "."); tok && n; tok = strtok(NULL, ".")) {
        if (n->kind == MT_CFG_LIST || (n->kind == MT_CFG_TAGGED && strcmp(tok, "~") == 0)) {
            int i = strcmp(tok, "~") == 0 ? 0 : atoi(tok);
            n = i >= 0 && i < n->n ? n->items[i] : NULL;
        } else {
            n = mt_cfg_get(n, tok);
        }
    }
    return n;
}

static inline const mt_cfg_node *node_at(const char *file, int line, const mt_cfg_node *root,
                                         const char *path)
{
    const mt_cfg_node *n = at_path(root, path);
    if (!n) mt_test_fail(file, line, "no node at '%s'", path);
    return n;
}
#define NODE(root, path) node_at(__FILE__, __LINE__, (root), (path))

#define CHECK_LOC(loc_, file_suffix, l, c)                                                         \
    do {                                                                                           \
        mt_cfg_loc mt__l = (loc_);                                                                 \
        const char *mt__f = (file_suffix);                                                         \
        size_t mt__fl = strlen(mt__l.file), mt__sl = strlen(mt__f);                                \
        if (mt__fl < mt__sl || strcmp(mt__l.file + mt__fl - mt__sl, mt__f) != 0 ||                 \
            mt__l.line != (l) || mt__l.col != (c))                                                 \
            mt_test_fail(__FILE__, __LINE__, "%s is %s:%d:%d, expected ...%s:%d:%d", #loc_,        \
                         mt__l.file, (int)mt__l.line, (int)mt__l.col, mt__f, (int)(l), (int)(c));  \
    } while (0)

#endif
