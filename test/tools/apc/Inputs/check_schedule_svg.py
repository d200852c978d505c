"""Reads `apc explain --svg`'s picture (it must parse as XML) and prints what it shows,
one fact a line, for FileCheck. With `apc plan --json`'s output of the same plan as the
second argument, also checks the picture against the cost model's own timeline: each
pass box at its start and end (data-start, data-end) and at x proportional to them on
the axis's scale, each backward's recomputed share, each stage's step, the step line.

Usage: check_schedule_svg.py PICTURE.svg [PLAN.json]
"""
import json
import re
import sys
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"


def close(a, b):
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b)) + 1e-15


def main():
    root = ET.parse(sys.argv[1]).getroot()
    assert root.tag == NS + "svg", root.tag
    plan = json.load(open(sys.argv[2]))["candidates"][0] if len(sys.argv) > 2 else None

    def texts(cls):
        return [t.text or "" for t in root.iter(NS + "text") if t.get("class") == cls]

    def rects(cls):
        return [r for r in root.iter(NS + "rect") if (r.get("class") or "").split()[:1] == [cls]]

    print("title", texts("title")[0])
    print("subtitle", texts("subtitle")[0])
    axis = texts("axis")[0]
    print("axis", axis)

    ticks = [l for l in root.iter(NS + "line") if l.get("class") == "tick"]
    labels = texts("tick")
    unit = re.search(r"\((s|ms|µs|ns)\)$", axis)
    if unit and plan:
        unit = unit.group(1)
        at = [float(l.get("data-seconds")) for l in ticks]
        xs = [float(l.get("x1")) for l in ticks]
        x0, scale = xs[0], (xs[-1] - xs[0]) / at[-1]
        even = all(abs(x - (x0 + a * scale)) <= 0.011 for x, a in zip(xs, at)) and at[0] == 0
        units = labels[0] == "0" and all(l.endswith(" " + unit) for l in labels[1:])
        last = at[-1] >= plan["seconds_per_step"]
        print("ticks %d, in %s, last >= step: %s" % (len(ticks), unit, even and units and last))
    else:
        x0 = scale = None
        print("ticks %d, in relative units" % len(ticks))

    # Rows: the boxes' y, top to bottom.
    boxes = rects("box")
    rows = sorted({float(b.get("y")) for b in boxes})

    def placed(r, start, end):
        return (close(float(r.get("data-start")), start) and close(float(r.get("data-end")), end)
                and abs(float(r.get("x")) - (x0 + start * scale)) <= 0.011
                and abs(float(r.get("width")) - max(0.5, (end - start) * scale)) <= 0.011)

    if plan and scale:
        ok = len(rows) == len(plan["stages"])
        for s, stage in enumerate(plan["stages"]):
            mine = [b for b in boxes if float(b.get("y")) == rows[s]]
            want = {p["pass"]: (p["start"], p["end"]) for p in stage["passes"]}
            ok = ok and len(mine) == len(want)
            for b in mine:
                name = b.find(NS + "title").text.split()[0]
                ok = ok and name in want and placed(b, *want[name])
        print("boxes %d at the cost model's times: %s" % (len(boxes), ok))
        recompute = rects("recompute")
        ok = True
        for r in recompute:
            s = rows.index(float(r.get("y")))
            stage = plan["stages"][s]
            starts = [p["start"] for p in stage["passes"] if p["pass"].startswith("B")]
            start = float(r.get("data-start"))
            ok = ok and any(close(start, b) for b in starts) and placed(r, start, start + stage["recompute"])
        print("recompute %d at the backwards' starts: %s" % (len(recompute), ok))
        steps = rects("step")
        ok = len(steps) == len(plan["stages"])
        for r in steps:
            stage = plan["stages"][rows.index(float(r.get("y")))]
            ok = ok and placed(r, stage["passes"][-1]["end"], stage["end"])
        print("steps %d at the cost model's stage ends: %s" % (len(steps), ok))
        line = [l for l in root.iter(NS + "line") if l.get("class") == "step-end"]
        print("step line at the step time: %s" % (
            len(line) == 1 and close(float(line[0].get("data-seconds")), plan["seconds_per_step"])
            and abs(float(line[0].get("x1")) - (x0 + plan["seconds_per_step"] * scale)) <= 0.011))
    else:
        print("boxes %d" % len(boxes))
        print("recompute %d" % len(rects("recompute")))
        print("steps %d" % len(rects("step")))
    note = texts("note")
    print("note", note[0] if note else None)


if __name__ == "__main__":
    main()
