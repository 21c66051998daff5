# Reads the TensorBoard HParams files of a finished sweep directory with TensorBoard's own
# parsers (EventAccumulator, the hparams plugin's metadata and protos) and checks them against
# summary.csv and space.json: the experiment lists every parameter with its type and domain
# and the metric "sweep/objective"; every finished trial folder holds a session whose values,
# status and final objective scalar match its summary.csv row. Used by sweep_cli.sh (hparams,
# and train when tensorboard is installed).
# Usage: hparams_check.py SWEEP_DIR
import csv
import json
import math
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, metadata

d = sys.argv[1]
bad = []


def check(cond, what):
    if not cond:
        bad.append(what)


def load(path):
    ea = EventAccumulator(path, size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


space = json.load(open(os.path.join(d, "space.json")))
top = load(d).PluginTagToContent("hparams")
ex = metadata.parse_experiment_plugin_data(top[metadata.EXPERIMENT_TAG])
check(ex.name == space["sweep"], "experiment name %r" % ex.name)
infos = {h.name: h for h in ex.hparam_infos}
check(sorted(infos) == sorted(p["name"] for p in space["params"]), "hparams %s" % sorted(infos))
def number(text):
    try:
        return float(text)
    except ValueError:
        return None


# categorical parameters whose options are all numbers are FLOAT64 with those numbers
numeric = {p["name"]: all(number(o) is not None for o in p.get("options", ["x"])) for p in space["params"]}
for p in space["params"]:
    h = infos.get(p["name"])
    if h is None:
        continue
    check(h.display_name == p["label"], "%s display name %r" % (p["name"], h.display_name))
    if "options" in p and not numeric[p["name"]]:
        check(h.type == api_pb2.DATA_TYPE_STRING, "%s type" % p["name"])
        got = [v.string_value for v in h.domain_discrete.values]
        check(got == p["options"], "%s domain %s" % (p["name"], got))
    elif "options" in p:
        check(h.type == api_pb2.DATA_TYPE_FLOAT64, "%s type" % p["name"])
        got = [v.number_value for v in h.domain_discrete.values]
        check(got == [float(o) for o in p["options"]], "%s domain %s" % (p["name"], got))
    else:
        check(h.type == api_pb2.DATA_TYPE_FLOAT64, "%s type" % p["name"])
        iv = h.domain_interval
        check((iv.min_value, iv.max_value) == (p["low"], p["high"]), "%s interval %s" % (p["name"], iv))
tags = [m.name.tag for m in ex.metric_infos]
# an expression objective: the sweep's scalar; a channel objective: also the channel itself
check(tags in (["sweep/objective"], ["sweep/objective", space["objective"]]), "metric tags %s" % tags)

want_status = {"ok": "STATUS_SUCCESS", "failed": "STATUS_FAILURE", "pruned": "STATUS_UNKNOWN"}
counts = {}
rows = list(csv.DictReader(open(os.path.join(d, "summary.csv"))))
check(len(rows) > 0, "summary.csv has no rows")
for row in rows:
    run = "trial_%04d" % int(row["trial"])
    ea = load(os.path.join(d, run))
    c = ea.PluginTagToContent("hparams")
    s = metadata.parse_session_start_info_plugin_data(c[metadata.SESSION_START_INFO_TAG])
    check(s.group_name == run, "%s group %r" % (run, s.group_name))
    for p in space["params"]:
        text = row[p["label"]]
        v = s.hparams.get(p["name"])
        if text == "":
            check(v is None, "%s: inactive %s has a value" % (run, p["name"]))
        elif "options" in p and not numeric[p["name"]]:
            check(v is not None and v.string_value == text, "%s %s: %s vs %s" % (run, p["name"], v, text))
        else:
            check(v is not None and math.isclose(v.number_value, float(text), rel_tol=1e-12),
                  "%s %s: %s vs %s" % (run, p["name"], v, text))
    e = metadata.parse_session_end_info_plugin_data(c[metadata.SESSION_END_INFO_TAG])
    status = api_pb2.Status.Name(e.status)
    check(status == want_status[row["status"]], "%s status %s for %s" % (run, status, row["status"]))
    counts[status] = counts.get(status, 0) + 1
    sc = ea.Scalars("sweep/objective") if "sweep/objective" in ea.Tags()["scalars"] else []
    if row["status"] == "failed" or row["value"] == "":
        check(not sc, "%s: a %s trial without a value has an objective scalar" % (run, row["status"]))
    else:
        check(len(sc) == 1 and math.isclose(sc[0].value, float(row["value"]), rel_tol=1e-6),
              "%s objective %s vs %s" % (run, [x.value for x in sc], row["value"]))
        check(len(sc) == 1 and sc[0].step == int(row["epochs"]), "%s objective step" % run)

if bad:
    print("FAIL:\n  " + "\n  ".join(bad))
    sys.exit(1)
print("OK: experiment with %d parameters; %d sessions %s" % (len(infos), len(rows), counts))
