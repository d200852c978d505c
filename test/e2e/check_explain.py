#!/usr/bin/env python3
"""End-to-end check of `apc explain` against the plans themselves.

Every fact `apc explain --json` reports is recomputed here from flatc's JSON form of the
same plan.fb (an independent reader of the schema), for tiny Llama 3 plans compiled under
several parallel plans (one device, dp, dp x tp with sp and ZeRO 1, ZeRO 2 and 3, bf16):
  mesh          axes, sizes, every rank's row-major coordinates;
  parameters    global shape, and for the parameter and each moment: dim_axes, block shape
                (= global / axis size on split dims), bytes per device;
  collectives   per program: count, bytes moved (inputs; all_gather and recv: output;
                all_slice: 0) by kind, op, mesh axes and (send/recv) peer_offset;
  memory        per program: Parameter, OptimizerState and Input bytes, arena, total, the
                gradients (adamw's grad operands) in the arena, the inputs' bindings;
  predicted     plan.predicted as written;
  text          the default output names the same totals (collective counts, memory total).
Pipelines (plans edited through flatc's JSON: a pipeline section and Program.stage), for
1, 2 and 4 stages x 1, 2, 3, 4 and 8 micro-batches, with equal and unequal stage FLOPs:
  the timeline equals an independent 1F1B simulation (order, start and end of every op),
  the bubble fraction is (p - 1) / (m + p - 1) for equal stages, and the SVG parses as XML,
  names every stage and holds 2 x stages x micro-batches boxes placed at the ops' times.
Damaged plans (random bytes changed): `apc explain` never crashes; where `aprun --dump`
refuses a plan, `apc explain` refuses it with the same message and exit code 2.

apc binaries: $APC_BIN_DIR/{apc,aprun} (default: build/bin of this checkout); flatc on PATH.
Run: python3 test/e2e/check_explain.py [--keep]
Prints one PASS/FAIL line per check and ends with "N passed, M failed"; exit 0 iff M == 0.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import e2e_common as ec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = os.path.join(REPO, "runtime", "schema", "plan.fbs")
CONFIG = os.path.join(REPO, "frontends", "llama3", "configs", "tiny.json")
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_slice", "send", "recv")
DTYPE_BYTES = {"F32": 4, "BF16": 2, "F16": 2, "I32": 4, "I64": 8}
SVG = "{http://www.w3.org/2000/svg}"

# (name, devices, plan, precision)
PLANS = [
    ("one-device", 1, None, "fp32"),
    ("dp2", 2, "dp=2", "fp32"),
    ("dp2-tp2-sp-zero1", 4, "dp=2,tp=2,sp=on,zero=1", "fp32"),
    ("dp2-tp2-zero2-bf16", 4, "dp=2,tp=2,zero=2", "bf16"),
    ("dp2-zero3", 2, "dp=2,zero=3", "fp32"),
]


def flatc(args, cwd):
    p = subprocess.run(["flatc"] + args, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise ec.StageFailure("flatc %s failed: %s" % (" ".join(args), p.stderr))


def plan_json(fb, work):
    flatc(["--json", "--strict-json", "--raw-binary", "--defaults-json", "-o", ".", SCHEMA, "--", fb], work)
    with open(os.path.join(work, os.path.splitext(os.path.basename(fb))[0] + ".json")) as f:
        return json.load(f)


def write_plan(plan, name, work):
    with open(os.path.join(work, name + ".json"), "w") as f:
        json.dump(plan, f)
    flatc(["-b", "-o", ".", SCHEMA, name + ".json"], work)
    return name + ".fb"


def explain(fb, work, extra=()):
    rc, out, err = ec.run_cmd("apc", ["explain", fb] + list(extra), work)
    if rc != 0:
        raise ec.StageFailure("apc explain %s exited %d: %s" % (fb, rc, err.strip()))
    return out


def human(n):
    """apc explain's byte units."""
    if n < 1024:
        return "%d B" % n
    v, units = n / 1024.0, ["KiB", "MiB", "GiB", "TiB", "PiB"]
    u = 0
    while v >= 1024.0 and u < 4:
        v /= 1024.0
        u += 1
    return "%.1f %s" % (v, units[u])


def attr(inst, name):
    for a in inst.get("attributes") or []:
        if a["name"] == name:
            return a
    return None


def coordinates(rank, shape):
    c = [0] * len(shape)
    for d in reversed(range(len(shape))):
        c[d] = rank % shape[d]
        rank //= shape[d]
    return c


# ---------------------------------------------------------------------------- plain plans


def device_count(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def stage_of(rank, shape, axes):
    """A plan holds one program per pipeline stage: a rank runs its "pp" coordinate's."""
    return coordinates(rank, shape)[axes.index("pp")] if "pp" in axes else 0


def check_plan(report, name, plan, got, text):
    shape = plan.get("mesh_shape") or []
    axes = plan.get("mesh_axes") or []
    mesh = got["mesh"]
    devices = device_count(shape)
    report.check("%s: mesh" % name, mesh["axes"] == axes and mesh["shape"] == shape
                 and mesh["devices"] == devices, json.dumps(mesh)[:200])
    want_ranks = [{"rank": r, "coordinates": dict(zip(axes, coordinates(r, shape)))}
                  for r in range(devices)]
    report.check("%s: rank coordinates" % name, mesh["ranks"] == want_ranks)

    # Parameters: the first program's buffer of each (every program splits it alike).
    bad = []
    for i, spec in enumerate(plan["parameters"]):
        g = got["parameters"][i]
        if g["name"] != spec["name"] or g["shape"] != spec["shape"]:
            bad.append("%s: name/shape" % spec["name"])
            continue
        for key, kind, slot in (("layout", "Parameter", None), ("exp_avg", "OptimizerState", "exp_avg"),
                                ("exp_avg_sq", "OptimizerState", "exp_avg_sq")):
            buf = next((b for p in plan["programs"] for b in p["buffers"]
                        if b["kind"] == kind and b["parameter"] == i and (slot is None or b.get("optimizer_slot") == slot)),
                       None)
            lay = g[key]
            if buf is None:
                if lay is not None:
                    bad.append("%s %s: should be absent" % (spec["name"], key))
                continue
            dim_axes = buf.get("dim_axes") or [-1] * len(buf["shape"])
            ways = [shape[a] if a >= 0 else 1 for a in dim_axes]
            block = [d // w for d, w in zip(spec["shape"], ways)]
            splits = [{"dim": d, "axis": axes[a], "ways": shape[a]} for d, a in enumerate(dim_axes) if a >= 0]
            if (lay is None or lay["dim_axes"] != dim_axes or lay["local_shape"] != buf["shape"]
                    or lay["local_shape"] != block or lay["bytes_per_device"] != buf["bytes"]
                    or lay["splits"] != splits or lay["replicated"] != (not splits)):
                bad.append("%s %s: got %s, plan %s" % (spec["name"], key, lay, dim_axes))
    report.check("%s: parameter and moment layouts (%d parameters)" % (name, len(plan["parameters"])),
                 not bad, "; ".join(bad[:3]))

    # Collectives and memory, per device: its stage's program, listed once per stage with
    # the ranks that run it.
    bad_c, bad_m = [], []
    got_ranks = [[k for k in range(devices) if stage_of(k, shape, axes) == s]
                 for s in range(len(plan["programs"]))]
    report.check("%s: one program per stage, with its ranks" % name,
                 [p["ranks"] for p in got["programs"]] == got_ranks
                 and [p["stage"] for p in got["programs"]] == list(range(len(plan["programs"]))),
                 str([p["ranks"] for p in got["programs"]])[:200])
    for k in range(devices):
        s = stage_of(k, shape, axes)
        prog = plan["programs"][s]
        bufs = prog["buffers"]
        kinds = {}
        for inst in prog["instructions"]:
            if inst["kernel"] not in COLLECTIVES:
                continue
            a = attr(inst, "axes")
            op = None
            if inst["kernel"] == "all_reduce":
                o = attr(inst, "op")
                op = o["s"] if o and o.get("s") else "sum"
            if inst["kernel"] in ("all_gather", "recv"):
                moved = sum(bufs[b]["bytes"] for b in inst["outputs"])
            elif inst["kernel"] == "all_slice":
                moved = 0
            else:
                moved = sum(bufs[b]["bytes"] for b in inst["inputs"])
            peer = None
            if inst["kernel"] in ("send", "recv"):
                po = attr(inst, "peer_offset")
                peer = po.get("i", 0) if po else 0
            key = (inst["kernel"], op, tuple(axes[x] for x in (a["ints"] if a else [])), peer)
            c, b = kinds.get(key, (0, 0))
            kinds[key] = (c + 1, b + moved)
        g = got["programs"][s]["collectives"]
        got_kinds = {(r["kind"], r["op"], tuple(r["axes"]), r.get("peer_offset")): (r["count"], r["bytes"])
                     for r in g["by_kind"]}
        if got_kinds != kinds or g["count"] != sum(c for c, _ in kinds.values()) \
                or g["bytes"] != sum(b for _, b in kinds.values()):
            bad_c.append("device %d: got %s, plan %s" % (k, got_kinds, kinds))
        mem = {"parameters": 0, "optimizer_state": 0, "inputs": 0}
        for b in bufs:
            field = {"Parameter": "parameters", "OptimizerState": "optimizer_state", "Input": "inputs"}.get(b["kind"])
            if field:
                mem[field] += b["bytes"]
        mem["arena"] = prog["arena_bytes"]
        mem["total"] = sum(mem.values())
        # Gradients: the distinct grad operands (input 1) of adamw, inside the arena.
        grads = {inst["inputs"][1] for inst in prog["instructions"]
                 if inst["kernel"] == "adamw" and len(inst.get("inputs", [])) > 1}
        mem["gradients_in_arena"] = sum(bufs[b]["bytes"] for b in grads)
        mem["input_bindings"] = [b["binding"] for b in bufs if b["kind"] == "Input"]
        if got["programs"][s]["memory"] != mem:
            bad_m.append("device %d: got %s, plan %s" % (k, got["programs"][s]["memory"], mem))
        if k == 0:
            count = sum(c for c, _ in kinds.values())
            moved = sum(b for _, b in kinds.values())
            line = "%d collective%s, %s moved" % (count, "" if count == 1 else "s", human(moved))
            report.check("%s: text names device 0's collectives" % name, line in text, line)
            report.check("%s: text names device 0's memory total" % name,
                         "total" in text and human(mem["total"]) in text, human(mem["total"]))
    report.check("%s: collectives per program (count, bytes by kind and axes)" % name, not bad_c,
                 "; ".join(bad_c[:2]))
    report.check("%s: memory per program" % name, not bad_m, "; ".join(bad_m[:2]))
    pr = plan["predicted"]
    # The cost model's figures (flatc leaves out defaults: fits = true, zeros).
    want = {"flops_per_step": pr["flops_per_step"], "seconds_per_step": pr["seconds_per_step"],
            "bytes_per_device": pr["bytes_per_device"], "cluster": pr["cluster"],
            "tokens_per_second_per_device": pr.get("tokens_per_second_per_device", 0.0),
            "mfu": pr.get("mfu", 0.0), "fits": pr.get("fits", True),
            "usable_bytes_per_device": pr.get("usable_bytes_per_device", 0.0),
            "breakdown": {t["name"]: t.get("seconds", 0.0) for t in pr.get("breakdown", [])},
            "memory": {t["name"]: t.get("bytes", 0) for t in pr.get("memory", [])},
            # Each stage's times (recompute: null when the plan does not record it).
            "stages": [{"forward": t.get("forward", 0.0), "backward": t.get("backward", 0.0),
                        "recompute": t.get("recompute"), "step": t.get("step", 0.0),
                        "send_forward": t.get("send_forward", 0.0),
                        "send_backward": t.get("send_backward", 0.0)}
                       for t in pr.get("stages", [])]}
    # flatc's JSON keeps about 12 significant digits of a double, and 12 decimals at most
    # (so small seconds lose digits: an absolute 1e-12 as well).
    def same(a, b):
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(a, float) or isinstance(b, float):
            return abs(a - b) <= 1e-10 * max(abs(a), abs(b)) + 1e-12
        return a == b
    report.check("%s: predicted" % name, same(got["predicted"], want),
                 json.dumps(got["predicted"]) + " want " + json.dumps(want))
    report.check("%s: predicted breakdown adds up to the step" % name,
                 abs(sum(want["breakdown"].values()) - want["seconds_per_step"])
                 <= 1e-9 * want["seconds_per_step"], json.dumps(want["breakdown"]))
    report.check("%s: predicted memory adds up to bytes per device" % name,
                 sum(want["memory"].values()) == want["bytes_per_device"], json.dumps(want["memory"]))
    report.check("%s: plan string, precision, cluster" % name,
                 got["parallel_plan"] == plan["parallel_plan"] and got["precision"] == plan["precision"]
                 and got["cluster"] == pr["cluster"] and got["parallel_plan"] in text)


# ---------------------------------------------------------------------------- pipelines


def one_f_one_b(stages, micro_batches, forward):
    """Independent 1F1B: per stage the Megatron order, then each op's start is the later of the
    stage's previous op and its dependency, by recursion over (stage, position)."""
    orders = []
    for s in range(stages):
        warmup = min(stages - s - 1, micro_batches)
        order = [("F", k) for k in range(warmup)]
        for i in range(micro_batches - warmup):
            order += [("F", warmup + i), ("B", i)]
        order += [("B", k) for k in range(micro_batches - warmup, micro_batches)]
        orders.append(order)
    where = {(s, op): i for s in range(stages) for i, op in enumerate(orders[s])}
    end = {}

    def finish(s, i):
        if (s, i) in end:
            return end[(s, i)]
        kind, k = orders[s][i]
        ready = finish(s, i - 1) if i > 0 else 0.0
        if kind == "F" and s > 0:
            ready = max(ready, finish(s - 1, where[(s - 1, ("F", k))]))
        if kind == "B" and s < stages - 1:
            ready = max(ready, finish(s + 1, where[(s + 1, ("B", k))]))
        end[(s, i)] = ready + forward[s] * (1 if kind == "F" else 2)
        return end[(s, i)]

    sys.setrecursionlimit(100000)
    rows = [[("%s%d" % orders[s][i], finish(s, i) - forward[s] * (1 if orders[s][i][0] == "F" else 2), finish(s, i))
             for i in range(len(orders[s]))] for s in range(stages)]
    makespan = max(e for row in rows for _, _, e in row)
    busy = sum(e - b for row in rows for _, b, e in row)
    return rows, 1 - busy / (stages * makespan)


def check_pipelines(report, work):
    config = json.load(open(CONFIG))
    config["num_hidden_layers"] = 4
    with open(os.path.join(work, "tiny4.json"), "w") as f:
        json.dump(config, f)
    ec.run_tool("apc", ["import", "llama3", "--config", "tiny4.json", "--batch", "4", "--seq-len", "8", "-o", "m4.mlir"], work)
    ec.run_tool("apc", ["compile", "m4.mlir", "--cluster", "cpu:4", "--plan", "dp=4", "--precision", "fp32",
                        "-o", "dp4.fb"], work)
    base = plan_json("dp4.fb", work)
    for stages in (1, 2, 4):
        per = 4 // stages
        for micro_batches in (1, 2, 3, 4, 8):
            for unequal in (False, True):
                name = "pipeline %d stages x %d micro-batches%s" % (stages, micro_batches, ", unequal" if unequal else "")
                plan = json.loads(json.dumps(base))
                plan["pipeline"] = {"stages": [{"first_layer": s * per, "num_layers": per, "embedding": s == 0,
                                                "head": s == stages - 1} for s in range(stages)],
                                    "micro_batches": micro_batches, "schedule": "1f1b", "recompute": "none"}
                # One program per stage on mesh [pp, dp]: ranks s * per .. (s + 1) * per - 1
                # run stage s; the batch is one sequence per data-parallel share.
                plan["mesh_shape"] = [stages, per]
                plan["mesh_axes"] = ["pp", "dp"]
                plan["data"]["batch"] = stages
                scale = [1.0 + (1.5 * s if unequal else 0.0) for s in range(stages)]
                program = base["programs"][0]
                # Edited stages: the compiled prediction's stage times no longer describe
                # them, so explain times them from their FLOPs (what this checks).
                plan["predicted"].pop("stages", None)
                plan["programs"] = []
                for s in range(stages):
                    prog = json.loads(json.dumps(program))
                    prog["stage"] = s
                    for inst in prog["instructions"]:
                        inst["flops"] = inst.get("flops", 0) * scale[s]
                    plan["programs"].append(prog)
                fb = write_plan(plan, "pp%d-mb%d-%d" % (stages, micro_batches, unequal), work)
                svg = fb.replace(".fb", ".svg")
                got = json.loads(explain(fb, work, ["--json", "--svg", svg]))
                flops = [sum(i.get("flops", 0) for i in plan["programs"][s]["instructions"]) for s in range(stages)]
                forward = [f / max(flops) for f in flops]
                rows, bubble = one_f_one_b(stages, micro_batches, forward)
                t = got["pipeline"]["timeline"]
                got_rows = [[(o["op"], o["start"], o["end"]) for o in row] for row in t["stages"]]
                same = len(got_rows) == len(rows) and all(
                    len(a) == len(b) and all(x[0] == y[0] and abs(x[1] - y[1]) < 1e-9 and abs(x[2] - y[2]) < 1e-9
                                             for x, y in zip(a, b)) for a, b in zip(got_rows, rows))
                report.check("%s: timeline = independent 1F1B" % name, same,
                             "" if same else "got %s, want %s" % (got_rows[0][:6], rows[0][:6]))
                ok = abs(t["bubble_fraction"] - bubble) < 1e-9
                if not unequal:
                    formula = (stages - 1) / (micro_batches + stages - 1)
                    ok = ok and abs(t["bubble_fraction"] - formula) < 1e-9
                report.check("%s: bubble %.4f" % (name, t["bubble_fraction"]), ok, "want %.4f" % bubble)
                report.check("%s: stages and ranks" % name,
                             [s["ranks"] for s in got["pipeline"]["stages"]] == [list(range(s * per, (s + 1) * per)) for s in range(stages)]
                             and [p["stage"] for p in got["programs"]] == list(range(stages))
                             and [p["ranks"] for p in got["programs"]] == [list(range(s * per, (s + 1) * per)) for s in range(stages)])
                root = ET.parse(os.path.join(work, svg)).getroot()
                texts = [x.text or "" for x in root.iter(SVG + "text")]
                boxes = [r for r in root.iter(SVG + "rect") if "box" in (r.get("class") or "").split()]
                named = all(any(x.startswith("stage %d (" % s) for x in texts) for s in range(stages))
                # Boxes lie at their op's time: x grows with start within each row.
                placed = True
                for s, row in enumerate(rows):
                    ys = sorted({float(r.get("y")) for r in boxes})
                    mine = sorted((float(r.get("x")), r.find(SVG + "title").text.split()[0]) for r in boxes
                                  if len(ys) == stages and float(r.get("y")) == ys[s])
                    placed = placed and [n for _, n in mine] == [op for op, _, _ in row]
                report.check("%s: SVG (%d boxes, stages named, 1F1B order, bubble shown)" % (name, len(boxes)),
                             root.tag == SVG + "svg" and len(boxes) == 2 * stages * micro_batches and named and placed
                             and "time (relative)" in texts and any("bubble %.1f%%" % (100 * bubble) in x for x in texts))
                text = explain(fb, work)
                report.check("%s: text bubble" % name, "1F1B bubble: %.1f%%" % (100 * bubble) in text)


# ---------------------------------------------------------------------------- damaged plans


def check_damaged(report, work, fb, cases=150):
    data = open(os.path.join(work, fb), "rb").read()
    rng = random.Random(1234)
    crashes, mismatches, refused = [], [], 0
    for n in range(cases):
        b = bytearray(data)
        for _ in range(rng.choice((1, 2, 4, 16))):
            b[rng.randrange(len(b))] = rng.randrange(256)
        if n % 10 == 0:
            b = b[: rng.randrange(len(b))]
        path = "damaged-%d.fb" % n
        with open(os.path.join(work, path), "wb") as f:
            f.write(b)
        rc, out, err = ec.run_cmd("apc", ["explain", path], work)
        rc_json, _, _ = ec.run_cmd("apc", ["explain", path, "--json"], work)
        rc_dump, _, err_dump = ec.run_cmd("aprun", ["--dump", path], work)
        if rc not in (0, 2) or rc_json not in (0, 2):
            crashes.append("%s: exit %d/%d %s" % (path, rc, rc_json, err.strip()[-200:]))
            continue
        if rc == 2:
            refused += 1
            if not err.startswith("apc explain: %s: " % path) or err.count("\n") != 1:
                mismatches.append("%s: message %r" % (path, err))
        if rc_dump == 2:
            if rc != 2 or err.replace("apc explain: ", "", 1) != err_dump.replace("aprun: ", "", 1):
                mismatches.append("%s: aprun %r, explain %r" % (path, err_dump, err))
        os.remove(os.path.join(work, path))
    report.check("damaged plans: no crash (%d cases, %d refused)" % (cases, refused), not crashes, "; ".join(crashes[:3]))
    report.check("damaged plans: refused as aprun refuses them, one line naming the file", not mismatches,
                 "; ".join(mismatches[:3]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    start = time.time()
    report = ec.Report()
    with ec.temp_root("apc-explain-", args.keep) as work:
        def compile_all():
            ec.run_tool("apc", ["import", "llama3", "--config", CONFIG, "--batch", "4", "--seq-len", "8",
                                "-o", "m.mlir"], work)
            for name, devices, plan_text, precision in PLANS:
                extra = ["--plan", plan_text if plan_text else "dp=%d" % devices]
                ec.run_tool("apc", ["compile", "m.mlir", "--cluster", "cpu:%d" % devices, "--precision", precision,
                                    "-o", name + ".fb"] + extra, work)
            return True

        if not report.guard("compile", compile_all):
            return report.summary(start)
        for name, _, _, _ in PLANS:
            def one(name=name):
                plan = plan_json(name + ".fb", work)
                got = json.loads(explain(name + ".fb", work, ["--json"]))
                check_plan(report, name, plan, got, explain(name + ".fb", work))
            report.guard(name, one)
        report.guard("pipelines", check_pipelines, report, work)
        report.guard("damaged plans", check_damaged, report, work, "dp2-tp2-sp-zero1.fb")
    return report.summary(start)


if __name__ == "__main__":
    sys.exit(main())
