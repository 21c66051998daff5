/* comm: GPU binding from the launch environment. `--device cuda` (or "cuda:auto") on a
 * multi-GPU node means one GPU per rank, chosen by the rank's index on its node (Open MPI's
 * OMPI_COMM_WORLD_LOCAL_RANK, Slurm's SLURM_LOCALID; mt_launch_info_get reads them). The GPUs
 * counted are those the CUDA driver shows this process, i.e. after CUDA_VISIBLE_DEVICES, so
 * cuda:<local rank> indexes the visible ones. When the launcher gave every rank one GPU of its
 * own (srun --gpus-per-task=1 or --gpu-bind=single:1 set CUDA_VISIBLE_DEVICES to one GPU per
 * task), the only visible device is cuda:0 for every rank. More ranks on a node than GPUs is
 * an error naming both counts, never silent sharing of a GPU (NCCL refuses two ranks on one
 * GPU, and the ranks would contend for its memory). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_impl.h"

static bool wants_auto_cuda(const char *requested)
{
    return strcmp(requested, "cuda") == 0 || strcmp(requested, "cuda:auto") == 0;
}

static mt_status copy_name(char *name, size_t len, const char *value)
{
    int w = snprintf(name, len, "%s", value);
    if (w < 0 || (size_t)w >= len)
        return mt_err_set(MT_ERR_RANGE, "device name '%s' does not fit in %zu bytes", value, len);
    return MT_OK;
}

mt_status mt_launch_pick_device_for(char *name, size_t len, const char *requested,
                                    const mt_launch_info *li, int32_t cuda_devices)
{
    if (!name || len == 0 || !requested || !li)
        return mt_err_set(MT_ERR_INVALID, "launch_pick_device: NULL argument");
    name[0] = 0;
    if (!wants_auto_cuda(requested)) return copy_name(name, len, requested);
    int32_t lr = li->local_rank, ln = li->local_size;
    if (cuda_devices <= 0)
        return mt_err_set(MT_ERR_NOT_FOUND, "--device %s: no CUDA device is visible to rank %d",
                          requested, (int)li->rank);
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    if (cuda_devices == 1 && ln > 1 && vis && *vis) {
        /* the launcher gave this rank its own GPU */
        mt_log(MT_LOG_DEBUG, "--device %s: rank %d (local rank %d of %d) sees one GPU "
               "(CUDA_VISIBLE_DEVICES=%s): cuda:0", requested, (int)li->rank, (int)lr, (int)ln,
               vis);
        return copy_name(name, len, "cuda:0");
    }
    if (ln > cuda_devices || lr >= cuda_devices)
        return mt_err_set(MT_ERR_RANGE,
                          "--device %s: %d ranks on this node but %d CUDA device%s: start at "
                          "most %d rank%s per node or pass --device explicitly (this is rank "
                          "%d, local rank %d%s%s)",
                          requested, (int)(ln > lr ? ln : lr + 1), (int)cuda_devices,
                          cuda_devices == 1 ? "" : "s", (int)cuda_devices,
                          cuda_devices == 1 ? "" : "s", (int)li->rank, (int)lr,
                          vis ? "; CUDA_VISIBLE_DEVICES=" : "", vis ? vis : "");
    char buf[32];
    snprintf(buf, sizeof buf, "cuda:%d", (int)lr);
    return copy_name(name, len, buf);
}

mt_status mt_launch_pick_device(char *name, size_t len, const char *requested)
{
    if (!name || len == 0 || !requested)
        return mt_err_set(MT_ERR_INVALID, "launch_pick_device: NULL argument");
    if (!wants_auto_cuda(requested)) return copy_name(name, len, requested);
    mt_launch_info li;
    mt_launch_info_get(&li);
    mt_device_info *infos = NULL;
    int32_t n = 0, ncuda = 0;
    mt_status st = mt_device_list(&infos, &n);
    if (st != MT_OK) return mt_err_prefix(st, "--device %s: listing devices: ", requested);
    for (int32_t i = 0; i < n; i++)
        if (strcmp(infos[i].backend, "cuda") == 0) ncuda++;
    mt_free(infos);
    if (ncuda == 0) {
        /* opening cuda:0 names the reason: no driver, a stub driver, no device, not built */
        mt_device *d = NULL;
        st = mt_device_open(&d, "cuda:0");
        if (st == MT_OK) { /* listed none, but one opens: use it */
            mt_device_release(d);
            ncuda = 1;
        } else {
            return mt_err_set(MT_ERR_NOT_FOUND, "--device %s: no CUDA device is visible to "
                              "rank %d: %s", requested, (int)li.rank, mt_last_error());
        }
    }
    return mt_launch_pick_device_for(name, len, requested, &li, ncuda);
}
