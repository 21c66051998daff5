/* Helpers shared by the graph tests: a fresh graph, type checks against hand-written type text
 * ("float32[3,?]"), and expected-failure checks that inspect both the thread-local error and the
 * graph's sticky error, then clear the graph's error so the next case starts clean. */
#ifndef GRAPH_TEST_UTIL_H
#define GRAPH_TEST_UTIL_H

#include "mltrain/graph.h"
#include "mt_test.h"

static inline mt_graph *new_graph(void)
{
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    return g;
}

static inline void check_type_text(const char *file, int line, mt_graph *g, mt_var v,
                                   const char *want)
{
    if (!v)
        mt_test_fail(file, line, "expected a variable of type %s, got an error: %s", want,
                     mt_graph_last_error(g));
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_type_format(mt_graph_type(g, v), &sb);
    if (strcmp(sb.data, want) != 0) mt_test_fail(file, line, "type %s, expected %s", sb.data, want);
    mt_strbuf_deinit(&sb);
}
#define CHECK_TYPE(g, v, want) check_type_text(__FILE__, __LINE__, (g), (v), (want))

static inline void check_fail(const char *file, int line, mt_graph *g, mt_var v, mt_status code,
                              const char *needle)
{
    if (v != MT_VAR_NONE) mt_test_fail(file, line, "expected failure, got v%d", (int)v);
    if (mt_last_status() != code)
        mt_test_fail(file, line, "status %s, expected %s (%s)", mt_status_name(mt_last_status()),
                     mt_status_name(code), mt_last_error());
    if (needle && !strstr(mt_last_error(), needle))
        mt_test_fail(file, line, "message '%s' lacks '%s'", mt_last_error(), needle);
    if (mt_graph_status(g) != code)
        mt_test_fail(file, line, "graph status %s, expected %s", mt_status_name(mt_graph_status(g)),
                     mt_status_name(code));
    if (needle && !strstr(mt_graph_last_error(g), needle))
        mt_test_fail(file, line, "graph message '%s' lacks '%s'", mt_graph_last_error(g), needle);
    mt_graph_clear_error(g);
    mt_err_clear();
}
#define CHECK_FAIL(g, expr, code, needle)                                     \
    do {                                                                      \
        mt_err_clear();                                                       \
        mt_graph_clear_error(g);                                              \
        mt_var cf__v = (expr);                                                \
        check_fail(__FILE__, __LINE__, (g), cf__v, (code), (needle));         \
    } while (0)

static inline mt_var ph(mt_graph *g, const char *name, mt_dtype dt, int32_t nd, const int64_t *shape)
{
    mt_var v = mt_graph_placeholder(g, name, dt, nd, shape);
    MT_CHECK(v != MT_VAR_NONE);
    return v;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define AXES(...) ((const int32_t[]){__VA_ARGS__})

#endif
