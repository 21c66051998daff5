/* `mltrain devices`: lists every device of the built backends with its memory and compute
 * units, so users see at a glance what a job can run on. */
#include <stdio.h>

#include "cli.h"

static void print_bytes(char *buf, size_t len, uint64_t b)
{
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, len, "%.1f %s", v, unit[u]);
}

int mt_cli_devices(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    mt_device_info *infos = NULL;
    int32_t n = 0;
    if (mt_device_list(&infos, &n) != MT_OK) return mt_cli_fail("listing devices");
    printf("%-14s %-8s %12s %12s %6s %5s  %s\n", "DEVICE", "BACKEND", "MEMORY", "MAX ALLOC",
           "UNITS", "FP64", "DESCRIPTION");
    for (int32_t i = 0; i < n; i++) {
        char mem[32], maxa[32];
        print_bytes(mem, sizeof mem, infos[i].global_mem);
        print_bytes(maxa, sizeof maxa, infos[i].max_alloc);
        printf("%-14s %-8s %12s %12s %6d %5s  %s\n", infos[i].name, infos[i].backend, mem, maxa,
               (int)infos[i].compute_units, infos[i].fp64 ? "yes" : "no", infos[i].description);
    }
    mt_free(infos);
    return 0;
}
