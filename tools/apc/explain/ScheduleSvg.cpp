// `apc explain --svg`: the 1F1B schedule as a timeline, one row per pipeline stage and
// one box per forward (F<k>) and backward (B<k>) of each micro-batch.
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

double niceStep(double span) {
  double raw = span / 8.0;
  if (!(raw > 0))
    return 1;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw)
      return m * mag;
  return 10 * mag;
}

} // namespace

std::string renderScheduleSvg(const PlanFacts &f) {
  if (!f.timeline)
    return "";
  const PipelineTimeline &t = *f.timeline;
  const char *forwardColour = "#4e79a7", *backwardColour = "#f28e2b", *idleColour = "#eeeeee";
  const double left = 260, right = 30, width = 1150, top = 100, rowHeight = 40, boxHeight = 30;
  const double lane = width - left - right;
  const double height = top + rowHeight * t.stages + 70;
  double span = t.makespan > 0 ? t.makespan : 1;
  auto xOf = [&](double time) { return left + time / span * lane; };

  std::string s;
  s += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" +
       num(height) + "\" viewBox=\"0 0 " + num(width) + " " + num(height) +
       "\" font-family=\"sans-serif\">\n";
  s += "<rect x=\"0\" y=\"0\" width=\"" + num(width) + "\" height=\"" + num(height) +
       "\" fill=\"white\"/>\n";
  std::string plan = f.parallelPlan.empty() ? "(plan not recorded)" : f.parallelPlan;
  s += "<text class=\"title\" x=\"20\" y=\"30\" font-size=\"18\" font-weight=\"bold\">"
       "Pipeline schedule: " + escape(plan) + "</text>\n";
  char subtitle[512];
  std::snprintf(subtitle, sizeof subtitle,
                "1F1B, %d stage%s x %d micro-batch%s; bubble %.1f%% of the stages' time "
                "(%s%s)",
                t.stages, t.stages == 1 ? "" : "s", t.microBatches,
                t.microBatches == 1 ? "" : "es", t.bubbleFraction * 100.0,
                f.stageTimesPredicted ? "the cost model's stage times"
                                      : "cost model: backward = 2 x forward",
                t.stages == 1 || f.stageTimesPredicted ? ""
                : f.stageTimesFromFlops ? ", forward time per stage from its FLOPs"
                                        : ", equal forward times (FLOPs unknown)");
  s += "<text class=\"subtitle\" x=\"20\" y=\"52\" font-size=\"12\">" + escape(subtitle) +
       "</text>\n";
  // Legend.
  double lx = 20, ly = 64;
  for (auto [colour, label] : {std::pair<const char *, const char *>{forwardColour, "forward"},
                               {backwardColour, "backward"},
                               {idleColour, "idle (bubble)"}}) {
    s += "<rect class=\"legend\" x=\"" + num(lx) + "\" y=\"" + num(ly) +
         "\" width=\"14\" height=\"14\" fill=\"" + colour + "\" stroke=\"#888888\"/>\n";
    s += "<text x=\"" + num(lx + 20) + "\" y=\"" + num(ly + 12) + "\" font-size=\"12\">" +
         label + "</text>\n";
    lx += 130;
  }
  // One row per stage: the idle lane, then the boxes.
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
    s += "<rect class=\"lane\" x=\"" + num(left) + "\" y=\"" + num(y) + "\" width=\"" +
         num(lane) + "\" height=\"" + num(boxHeight) + "\" fill=\"" + idleColour + "\"/>\n";
    for (const ScheduledOp &op : t.ops[size_t(st)]) {
      double x = xOf(op.start), w = std::max(0.5, xOf(op.end) - x);
      std::string name = op.label();
      s += "<rect class=\"box " + std::string(op.forward ? "fwd" : "bwd") + "\" x=\"" + num(x) +
           "\" y=\"" + num(y) + "\" width=\"" + num(w) + "\" height=\"" + num(boxHeight) +
           "\" fill=\"" + (op.forward ? forwardColour : backwardColour) +
           "\" stroke=\"white\" stroke-width=\"0.5\"><title>" + name + " on stage " +
           std::to_string(st) + ": " + number(op.start) + " to " + number(op.end) +
           "</title></rect>\n";
      if (w >= 7.5 * double(name.size()))
        s += "<text class=\"label\" x=\"" + num(x + w / 2) + "\" y=\"" +
             num(y + boxHeight / 2 + 4) + "\" font-size=\"11\" text-anchor=\"middle\" "
             "fill=\"white\">" + name + "</text>\n";
    }
  }
  // The time axis.
  double ay = top + rowHeight * t.stages + 4;
  s += "<line x1=\"" + num(left) + "\" y1=\"" + num(ay) + "\" x2=\"" + num(left + lane) +
       "\" y2=\"" + num(ay) + "\" stroke=\"black\"/>\n";
  double step = niceStep(span);
  for (int i = 0; i * step <= span * (1 + 1e-9) && i <= 1000; ++i) {
    double x = xOf(i * step);
    s += "<line x1=\"" + num(x) + "\" y1=\"" + num(ay) + "\" x2=\"" + num(x) + "\" y2=\"" +
         num(ay + 5) + "\" stroke=\"black\"/>\n";
    s += "<text x=\"" + num(x) + "\" y=\"" + num(ay + 18) +
         "\" font-size=\"11\" text-anchor=\"middle\">" + number(i * step) + "</text>\n";
  }
  s += "<text class=\"axis\" x=\"" + num(left + lane / 2) + "\" y=\"" + num(ay + 40) +
       "\" font-size=\"12\" text-anchor=\"middle\">" +
       (f.stageTimesPredicted ? "time (s)" : "time (relative)") + "</text>\n";
  s += "</svg>\n";
  return s;
}

} // namespace apc::explain
