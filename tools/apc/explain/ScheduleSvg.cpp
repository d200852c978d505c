// `apc explain --svg`: the 1F1B schedule as a timeline, one row per pipeline stage and
// one box per forward (F<k>) and backward (B<k>) of each micro-batch.
//
// With the plan's prediction (plan.predicted.stages, the cost model's) the axis is time in
// seconds since the step's start (s, ms, µs or ns as fits), every box lies at its
// predicted start and end, each backward shows its recomputed share, each stage's step
// (the update and its reductions) follows its last backward, a pass that waits for its
// input's transfer from the neighbour stage shows the wait, and the title gives the
// predicted step time, tokens/s per device and MFU. Without one (older or edited plans)
// the times are relative (forward per stage from its FLOPs, backward = 2 x forward) and
// the picture says so.
//
// Every drawn pass carries data-start and data-end (seconds with a prediction, else the
// relative units) and every tick data-seconds, for tools and tests.
#include "tools/apc/explain/PlanFacts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace apc::explain {
namespace {

std::string escape(const std::string &s) {
  std::string out;
  for (char c : s) {
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    case '\'': out += "&apos;"; break;
    default:
      // XML 1.0 allows no control characters but tab, newline and carriage return.
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
        out += '?';
      else
        out += c;
    }
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// 12 significant digits, for the data-* attributes.
std::string exact(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.12g", v);
  return buf;
}

// A round tick step (1, 2 or 5 x 10^k) giving about `target` intervals over `span`.
double niceStep(double span, double target = 8.0) {
  double raw = span / target;
  if (!(raw > 0))
    return 1;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw)
      return m * mag;
  return 10 * mag;
}

// The unit an axis of `span` seconds reads best in: its scale (units per second) and name.
std::pair<double, const char *> timeUnit(double span) {
  if (span >= 1)
    return {1, "s"};
  if (span >= 1e-3)
    return {1e3, "ms"};
  if (span >= 1e-6)
    return {1e6, "\xC2\xB5s"}; // µs
  return {1e9, "ns"};
}

// "1.78 ms", "77.1 µs": a duration or instant in the unit that fits it.
std::string timeText(double seconds) {
  if (!std::isfinite(seconds))
    return "?";
  auto [scale, unit] = timeUnit(std::fabs(seconds));
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.3g %s", seconds * scale, unit);
  return seconds == 0 ? "0" : buf;
}

std::string withCommas(double v) {
  if (!std::isfinite(v) || v < 0 || v >= 1e18)
    return number(v);
  std::string digits = std::to_string(int64_t(std::llround(v))), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return out;
}

std::string rect(const std::string &cls, double x, double y, double w, double h,
                 const std::string &fill, const std::string &extra = "") {
  return "<rect class=\"" + cls + "\" x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" +
         num(w) + "\" height=\"" + num(h) + "\" fill=\"" + fill + "\"" + extra;
}

} // namespace

std::string renderScheduleSvg(const PlanFacts &f) {
  if (!f.timeline)
    return "";
  const PipelineTimeline &t = *f.timeline;
  // Seconds from the plan's prediction, with each stage's step; else relative units.
  const bool seconds = f.stageTimesPredicted;
  const char *forwardColour = "#4e79a7", *backwardColour = "#f28e2b", *idleColour = "#eeeeee",
             *recomputeColour = "url(#recompute)", *stepColour = "#59a14f",
             *p2pColour = "#b07aa1";
  bool anyRecompute = false, recomputeUnknown = false;
  if (seconds)
    for (const PredictedStageTimes &st : f.predictedStages) {
      anyRecompute = anyRecompute || (st.recomputeKnown && st.recompute > 0);
      recomputeUnknown = recomputeUnknown || !st.recomputeKnown;
    }
  // A line under the subtitle says what the picture cannot show.
  std::string note;
  if (!seconds) {
    std::string why = !f.predictedPresent ? "the plan has no prediction"
                      : !f.predictedModel
                          ? "an older plan: its prediction has no cost-model figures"
                      : !f.predictedStagesUnused.empty() ? f.predictedStagesUnused
                                                         : "the prediction is unusable";
    note = "No predicted times in this plan (" + why + "): the time axis is relative, not "
           "seconds; steps and transfers are not drawn.";
  } else if (recomputeUnknown && f.recompute != "none") {
    note = "This plan does not record the recomputed share of the backwards (an older "
           "plan): backwards drawn whole.";
  }

  const double left = 260, right = 40, width = 1150, rowHeight = 40, boxHeight = 30;
  const double top = note.empty() ? 110 : 128;
  const double lane = width - left - right;
  const double height = top + rowHeight * t.stages + 70;
  // The axis: with seconds, round ticks in the unit that fits, the last at or past the
  // step's end (and the predicted step time); else the makespan in relative units.
  double span = seconds ? std::max(t.end, std::isfinite(f.predictedSeconds)
                                              ? f.predictedSeconds
                                              : 0.0)
                        : t.makespan;
  if (!(span > 0) || !std::isfinite(span))
    span = 1;
  double scale = 1, tick = niceStep(span), axisEnd = span;
  const char *unit = "";
  int ticks = 0;
  if (seconds) {
    auto u = timeUnit(span);
    scale = u.first;
    unit = u.second;
    tick = niceStep(span * scale, 10.0); // in the unit
    double count = std::ceil(span * scale / tick - 1e-9);
    if (!(tick > 0) || !std::isfinite(tick) || !(count >= 1) || count > 1000) {
      tick = span * scale; // denormal or otherwise odd times: one tick at the end
      count = 1;
    }
    ticks = int(count);
    if (double(ticks) * tick / scale < span)
      ++ticks;
    axisEnd = double(ticks) * tick / scale;
  } else {
    for (ticks = 0; (ticks + 1) * tick <= span * (1 + 1e-9) && ticks < 1000; ++ticks) {
    }
  }
  auto xOf = [&](double time) { return left + time / axisEnd * lane; };
  auto span_ = [&](double a, double b) {
    return " data-start=\"" + exact(a) + "\" data-end=\"" + exact(b) + "\"";
  };
  auto during = [&](double a, double b) {
    return seconds ? timeText(a) + " to " + timeText(b) + " (" + timeText(b - a) + ")"
                   : number(a) + " to " + number(b);
  };

  std::string s;
  s += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" +
       num(height) + "\" viewBox=\"0 0 " + num(width) + " " + num(height) +
       "\" font-family=\"sans-serif\">\n";
  s += "<defs><pattern id=\"recompute\" width=\"6\" height=\"6\" "
       "patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
       "<rect width=\"6\" height=\"6\" fill=\"" + std::string(backwardColour) + "\"/>"
       "<rect width=\"3\" height=\"6\" fill=\"#fbd5ad\"/></pattern></defs>\n";
  s += "<rect x=\"0\" y=\"0\" width=\"" + num(width) + "\" height=\"" + num(height) +
       "\" fill=\"white\"/>\n";
  std::string plan = f.parallelPlan.empty() ? "(plan not recorded)" : f.parallelPlan;
  std::string title = "Pipeline schedule: " + plan;
  if (seconds) {
    char figures[160];
    std::snprintf(figures, sizeof figures, ", MFU %.2f%%", 100 * f.predictedMfu);
    title += " \xE2\x80\x94 predicted " + timeText(f.predictedSeconds) + " per step, " +
             withCommas(f.predictedTokensPerSecondPerDevice) + " tokens/s per device" +
             figures;
  }
  // Long titles shrink to the width (bold sans-serif: about 0.6 em per character).
  double titleSize = std::clamp((width - 40) / (0.6 * double(title.size())), 11.0, 18.0);
  s += "<text class=\"title\" x=\"20\" y=\"30\" font-size=\"" + num(titleSize) +
       "\" font-weight=\"bold\">" + escape(title) + "</text>\n";
  char subtitle[512];
  std::snprintf(subtitle, sizeof subtitle,
                "%s, %d stage%s x %d micro-batch%s%s%s; bubble %.1f%% of the stages' time "
                "(%s%s)",
                f.chunks > 1 ? ("interleaved 1F1B, " + std::to_string(f.chunks) + " chunks a stage")
                                   .c_str()
                             : "1F1B",
                t.stages, t.stages == 1 ? "" : "s", t.microBatches,
                t.microBatches == 1 ? "" : "es", seconds && !f.predictedCluster.empty()
                                                     ? " on " : "",
                seconds ? f.predictedCluster.c_str() : "", t.bubbleFraction * 100.0,
                seconds ? "to the last backward; the cost model's stage times, "
                          "docs/cost-model.md"
                        : "cost model: backward = 2 x forward",
                t.stages == 1 || seconds ? ""
                : f.stageTimesFromFlops  ? ", forward time per stage from its FLOPs"
                                         : ", equal forward times (FLOPs unknown)");
  s += "<text class=\"subtitle\" x=\"20\" y=\"52\" font-size=\"12\">" + escape(subtitle) +
       "</text>\n";
  double ly = 64;
  if (!note.empty()) {
    s += "<text class=\"note\" x=\"20\" y=\"70\" font-size=\"12\" fill=\"#b0400b\">" +
         escape(note) + "</text>\n";
    ly = 82;
  }
  // Legend.
  std::vector<std::pair<std::string, std::string>> legend = {{forwardColour, "forward"},
                                                             {backwardColour, "backward"}};
  if (seconds) {
    if (anyRecompute)
      legend.push_back({recomputeColour, "recompute (part of the backward)"});
    legend.push_back({stepColour, "step (update and reductions)"});
    legend.push_back({p2pColour, "waiting for a transfer (p2p)"});
  }
  legend.push_back({idleColour, "idle (bubble)"});
  double lx = 20;
  for (const auto &[colour, label] : legend) {
    s += rect("legend", lx, ly, 14, 14, colour, " stroke=\"#888888\"/>\n");
    s += "<text x=\"" + num(lx + 20) + "\" y=\"" + num(ly + 12) + "\" font-size=\"12\">" +
         escape(label) + "</text>\n";
    lx += 40 + 6.5 * double(label.size());
  }
  // The stages' names and idle lanes, the grid, then the passes over them.
  for (int st = 0; st < t.stages; ++st) {
    double y = top + rowHeight * st;
    std::string label = "stage " + std::to_string(st) + " (" +
                        (size_t(st) < f.stages.size() ? ranksText(f.stages[size_t(st)].ranks)
                                                      : std::string("?")) +
                        ")";
    if (label.size() > 34)
      label = label.substr(0, 31) + "...";
    s += "<text class=\"stage\" x=\"" + num(left - 10) + "\" y=\"" + num(y + 12) +
         "\" font-size=\"12\" text-anchor=\"end\">" + escape(label) + "</text>\n";
    // What the stage holds, under its name ("embedding, layers 0-1").
    std::string contents =
        size_t(st) < f.stages.size() ? stageContents(f.stages[size_t(st)]) : std::string("?");
    if (contents.size() > 44)
      contents = contents.substr(0, 41) + "...";
    s += "<text class=\"contents\" x=\"" + num(left - 10) + "\" y=\"" + num(y + 26) +
         "\" font-size=\"10\" fill=\"#555555\" text-anchor=\"end\">" + escape(contents) +
         "</text>\n";
    s += rect("lane", left, y, lane, boxHeight, idleColour, "/>\n");
  }
  double rowsEnd = top + rowHeight * t.stages - (rowHeight - boxHeight);
  if (seconds)
    for (int i = 1; i <= ticks; ++i) {
      double x = xOf(double(i) * tick / scale);
      s += "<line class=\"grid\" x1=\"" + num(x) + "\" y1=\"" + num(top) + "\" x2=\"" +
           num(x) + "\" y2=\"" + num(rowsEnd) + "\" stroke=\"#ffffff\" stroke-width=\"1\"/>\n";
    }
  for (int st = 0; st < t.stages; ++st) {
    double y = top + rowHeight * st;
    const std::vector<ScheduledOp> &ops = t.ops[size_t(st)];
    for (size_t i = 0; i < ops.size(); ++i) {
      const ScheduledOp &op = ops[i];
      std::string name = op.label();
      // The wait for this pass's input in flight: from when the stage was free (or the
      // input was sent, if later) to its arrival. Earlier idle time is the bubble.
      if (seconds && op.inputSent >= 0) {
        double free = i ? ops[i - 1].end : 0.0;
        double from = std::max(free, op.inputSent), to = std::min(op.start, op.inputArrived);
        if (to > from + 1e-12 * axisEnd) {
          double x = xOf(from), w = std::max(0.5, xOf(to) - x);
          s += rect("p2p", x, y + boxHeight / 4, w, boxHeight / 2, p2pColour,
                    span_(from, to) + "><title>" + name + " on stage " + std::to_string(st) +
                        " waits for " + (op.forward ? "the activation from stage " +
                                                          std::to_string(st - 1)
                                                    : "the gradient from stage " +
                                                          std::to_string(st + 1)) +
                        ": " + during(from, to) + "</title></rect>\n");
        }
      }
      double x = xOf(op.start), w = std::max(0.5, xOf(op.end) - x);
      std::string tip = name + " on stage " + std::to_string(st) + ": " +
                        during(op.start, op.end);
      if (!op.forward && op.recompute > 0)
        tip += ", recompute " + timeText(op.recompute);
      s += rect(std::string("box ") + (op.forward ? "fwd" : "bwd"), x, y, w, boxHeight,
                op.forward ? forwardColour : backwardColour,
                span_(op.start, op.end) + " stroke=\"white\" stroke-width=\"0.5\"><title>" +
                    tip + "</title></rect>\n");
      if (!op.forward && op.recompute > 0) {
        double rw = std::max(0.5, xOf(op.start + op.recompute) - x);
        s += rect("recompute", x, y, rw, boxHeight, recomputeColour,
                  span_(op.start, op.start + op.recompute) + "><title>" + name + " on stage " +
                      std::to_string(st) + ": recompute " +
                      during(op.start, op.start + op.recompute) + "</title></rect>\n");
      }
      if (w >= 7.5 * double(name.size()))
        s += "<text class=\"label\" x=\"" + num(x + w / 2) + "\" y=\"" +
             num(y + boxHeight / 2 + 4) + "\" font-size=\"11\" text-anchor=\"middle\" "
             "fill=\"white\">" + name + "</text>\n";
    }
    // The stage's step after its last backward.
    if (seconds && size_t(st) < t.stepStart.size()) {
      double a = t.stepStart[size_t(st)], b = t.stepEnd[size_t(st)];
      double x = xOf(a), w = std::max(0.5, xOf(b) - x);
      s += rect("step", x, y, w, boxHeight, stepColour,
                span_(a, b) + " stroke=\"white\" stroke-width=\"0.5\"><title>step on stage " +
                    std::to_string(st) + " (update and reductions): " + during(a, b) +
                    "</title></rect>\n");
      if (w >= 34)
        s += "<text class=\"label\" x=\"" + num(x + w / 2) + "\" y=\"" +
             num(y + boxHeight / 2 + 4) + "\" font-size=\"11\" text-anchor=\"middle\" "
             "fill=\"white\">step</text>\n";
    }
  }
  // The predicted step time: a dashed line across the stages.
  if (seconds && f.predictedSeconds > 0 && std::isfinite(f.predictedSeconds)) {
    double x = xOf(f.predictedSeconds);
    s += "<line class=\"step-end\" data-seconds=\"" + exact(f.predictedSeconds) + "\" x1=\"" +
         num(x) + "\" y1=\"" + num(top - 8) + "\" x2=\"" + num(x) + "\" y2=\"" +
         num(rowsEnd + 4) + "\" stroke=\"#c0392b\" stroke-dasharray=\"4 3\"/>\n";
    s += "<text class=\"step-end\" x=\"" + num(x) + "\" y=\"" + num(top - 11) +
         "\" font-size=\"11\" text-anchor=\"end\" fill=\"#c0392b\">step " +
         escape(timeText(f.predictedSeconds)) + "</text>\n";
  }
  // The time axis.
  double ay = top + rowHeight * t.stages + 4;
  s += "<line x1=\"" + num(left) + "\" y1=\"" + num(ay) + "\" x2=\"" + num(left + lane) +
       "\" y2=\"" + num(ay) + "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= ticks; ++i) {
    double at = seconds ? double(i) * tick / scale : double(i) * tick;
    double x = xOf(at);
    std::string label = seconds ? number(std::round(double(i) * tick * 1e6) / 1e6) +
                                      (i ? std::string(" ") + unit : std::string())
                                : number(double(i) * tick);
    s += "<line class=\"tick\" " + std::string(seconds ? "data-seconds" : "data-time") +
         "=\"" + exact(at) + "\" x1=\"" + num(x) +
         "\" y1=\"" + num(ay) + "\" x2=\"" + num(x) + "\" y2=\"" + num(ay + 5) +
         "\" stroke=\"black\"/>\n";
    s += "<text class=\"tick\" x=\"" + num(x) + "\" y=\"" + num(ay + 18) +
         "\" font-size=\"11\" text-anchor=\"middle\">" + escape(label) + "</text>\n";
  }
  s += "<text class=\"axis\" x=\"" + num(left + lane / 2) + "\" y=\"" + num(ay + 40) +
       "\" font-size=\"12\" text-anchor=\"middle\">" +
       (seconds ? "time since the step's start (" + std::string(unit) + ")"
                : std::string("time (relative)")) +
       "</text>\n";
  s += "</svg>\n";
  return s;
}

} // namespace apc::explain
