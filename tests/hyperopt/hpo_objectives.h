/* Standard objectives of hyperparameter search as text of the sweep expression language:
 * Branin over (x, y) and Hartmann6 over (x1 .. x6). Shared by the hyperopt tests and
 * bench/bench_tpe.c. */
#ifndef MT_HPO_OBJECTIVES_H
#define MT_HPO_OBJECTIVES_H

#include "mltrain/core.h"

static const char *const hpo_branin_expr =
    "(y - 5.1 / (4 * pi**2) * x**2 + 5 * x / pi - 6)**2 + 10 * (1 - 1 / (8 * pi)) * cos(x) + 10";

/* Appends the Hartmann6 expression to sb. */
static inline void hpo_hartmann6_expr(mt_strbuf *sb)
{
    static const double A[4][6] = {{10, 3, 17, 3.5, 1.7, 8},
                                   {0.05, 10, 17, 0.1, 8, 14},
                                   {3, 3.5, 1.7, 10, 17, 8},
                                   {17, 8, 0.05, 10, 0.1, 14}};
    static const double P[4][6] = {{0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886},
                                   {0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991},
                                   {0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650},
                                   {0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381}};
    static const double c[4] = {1.0, 1.2, 3.0, 3.2};
    mt_strbuf_append(sb, "-(");
    for (int i = 0; i < 4; i++) {
        mt_strbuf_appendf(sb, "%s%g * exp(-(", i ? " + " : "", c[i]);
        for (int j = 0; j < 6; j++)
            mt_strbuf_appendf(sb, "%s%g * (x%d - %g)**2", j ? " + " : "", A[i][j], j + 1, P[i][j]);
        mt_strbuf_append(sb, "))");
    }
    mt_strbuf_append(sb, ")");
}

#endif
