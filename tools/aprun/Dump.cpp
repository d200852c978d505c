#include "tools/aprun/Dump.h"

#include "runtime/plan/DeviceProgram.h"
#include "runtime/schema/plan_generated.h"
#include "runtime/support/MeshCoordinates.h"

#include <string>
#include <vector>

namespace apc::tools {
namespace {

std::string shape(const flatbuffers::Vector<int64_t> *dims) {
  std::string s = "[";
  if (dims)
    for (size_t i = 0; i < dims->size(); ++i)
      s += (i ? ", " : "") + std::to_string(dims->Get(i));
  return s + "]";
}

std::string attribute(const plan::Attribute &a) {
  std::string v;
  switch (a.kind()) {
  case plan::AttributeKind::Int: v = std::to_string(a.i()); break;
  case plan::AttributeKind::Float: {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", a.f());
    v = buf;
    break;
  }
  case plan::AttributeKind::Bool: v = a.b() ? "true" : "false"; break;
  case plan::AttributeKind::String: v = "\"" + (a.s() ? a.s()->str() : "") + "\""; break;
  case plan::AttributeKind::Ints: v = shape(a.ints()); break;
  }
  return a.name()->str() + "=" + v;
}

// "ranks 0-3", "ranks 0-1, 4-5", "rank 2"; past 6 runs, the first 3, "...", the last
// and the count ("ranks 0-7, 128-135, 256-263, ..., 8064-8071: 512 devices").
std::string ranksText(const std::vector<int64_t> &sorted) {
  std::vector<std::string> runs;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1)
      ++j;
    runs.push_back(std::to_string(sorted[i]) + (j > i ? "-" + std::to_string(sorted[j]) : ""));
    i = j + 1;
  }
  if (runs.size() > 6)
    runs = {runs[0], runs[1], runs[2], "...",
            runs.back() + ": " + std::to_string(sorted.size()) + " devices"};
  std::string s;
  for (const std::string &r : runs)
    s += (s.empty() ? "" : ", ") + r;
  return (sorted.size() == 1 ? "rank " : "ranks ") + s;
}

// Instruction.layer: decoder layers by index, -2 the embedding, num_hidden_layers the head.
std::string layerText(int layer, const plan::ModelConfig &m) {
  if (layer == -2)
    return "embedding";
  if (layer == m.num_hidden_layers())
    return "head";
  return std::to_string(layer);
}

} // namespace

void dumpPlan(const plan::Plan &p, std::FILE *out) {
  const plan::ModelConfig &m = *p.model();
  std::fprintf(out, "plan version %u (%s), precision %s\n", p.version(),
               p.producer() ? p.producer()->c_str() : "?", p.precision() ? p.precision()->c_str() : "?");
  std::fprintf(out,
               "model: %s, %lld layers, hidden %lld, intermediate %lld, heads %lld (kv %lld, "
               "head_dim %lld), vocab %lld, rope %s theta %g, rms_norm_eps %g, tied %s\n",
               m.architecture() ? m.architecture()->c_str() : "?", (long long)m.num_hidden_layers(),
               (long long)m.hidden_size(), (long long)m.intermediate_size(),
               (long long)m.num_attention_heads(), (long long)m.num_key_value_heads(),
               (long long)m.head_dim(), (long long)m.vocab_size(),
               m.rope_type() ? m.rope_type()->c_str() : "default", m.rope_theta(),
               m.rms_norm_eps(), m.tie_word_embeddings() ? "yes" : "no");
  std::fprintf(out, "data: batch %lld, seq_len %lld, pad_id %lld, ids %s\n",
               (long long)p.data()->batch(), (long long)p.data()->seq_len(),
               (long long)p.data()->pad_id(), plan::EnumNameDType(p.data()->ids_dtype()));
  const plan::OptimizerSpec &o = *p.optimizer();
  std::fprintf(out, "optimizer: %s beta1 %g beta2 %g eps %g weight_decay %g max_grad_norm %g\n",
               o.name() ? o.name()->c_str() : "?", o.beta1(), o.beta2(), o.epsilon(),
               o.weight_decay(), o.max_grad_norm());
  int64_t total = 0;
  std::fprintf(out, "parameters (%u):\n", p.parameters()->size());
  for (const plan::ParameterSpec *s : *p.parameters()) {
    int64_t n = 1;
    for (int64_t d : *s->shape())
      n *= d;
    total += n;
    std::fprintf(out, "  %-56s %-14s %s\n", s->name()->c_str(), shape(s->shape()).c_str(),
                 s->init() ? s->init()->c_str() : "");
  }
  std::fprintf(out, "  total %lld parameters\n", (long long)total);
  if (const plan::SearchRecord *search = p.search()) {
    std::fprintf(out, "search: chosen by the plan search (--plan %s) among %lld plans (%lld "
                      "estimated, %lld compiled, %lld dropped) in %.3g s",
                 search->request() ? search->request()->c_str() : "auto",
                 (long long)search->enumerated(), (long long)search->estimated(),
                 (long long)search->compiled(), (long long)search->dropped(), search->seconds());
    if (search->alternatives())
      for (const plan::Alternative *a : *search->alternatives())
        std::fprintf(out, "; runner-up %s, %.3g s per step", a->plan() ? a->plan()->c_str() : "?",
                     a->seconds_per_step());
    std::fprintf(out, "\n");
  }
  if (const plan::Prediction *pr = p.predicted())
    std::fprintf(out, "predicted (cluster %s, backend %s): %.3g FLOP per step, %.3g s per step, "
                      "%.1f MiB per device\n",
                 pr->cluster() ? pr->cluster()->c_str() : "?",
                 p.backend() ? p.backend()->c_str() : "cpu", pr->flops_per_step(),
                 pr->seconds_per_step(), double(pr->bytes_per_device()) / 1048576.0);
  if (const plan::Prediction *pr = p.predicted(); pr && pr->breakdown()) {
    std::fprintf(out, "  %.4g tokens/s per device, MFU %.2f%%, %s\n",
                 pr->tokens_per_second_per_device(), 100 * pr->mfu(),
                 pr->usable_bytes_per_device() > 0
                     ? (pr->fits() ? "fits in device memory" : "does NOT fit in device memory")
                     : "device memory unknown");
    std::string parts;
    for (const plan::PredictionTerm *t : *pr->breakdown())
      if (t->seconds() > 0) {
        char part[96];
        std::snprintf(part, sizeof part, "%s%s %.3g s", parts.empty() ? "" : ", ",
                      t->name() ? t->name()->c_str() : "?", t->seconds());
        parts += part;
      }
    std::fprintf(out, "  step: %s\n", parts.empty() ? "nothing" : parts.c_str());
    if (pr->memory()) {
      std::string kinds;
      for (const plan::MemoryTerm *t : *pr->memory()) {
        char part[96];
        std::snprintf(part, sizeof part, "%s%s %.1f MiB", kinds.empty() ? "" : ", ",
                      t->name() ? t->name()->c_str() : "?", double(t->bytes()) / 1048576.0);
        kinds += part;
      }
      std::fprintf(out, "  memory per device: %s\n", kinds.c_str());
    }
    // Each stage's times: one micro-batch's passes and transfers, the step once.
    if (pr->stages())
      for (size_t s = 0; s < pr->stages()->size(); ++s) {
        const plan::StageTiming *t = pr->stages()->Get(flatbuffers::uoffset_t(s));
        char recompute[48] = "not recorded";
        if (t->recompute().has_value())
          std::snprintf(recompute, sizeof recompute, "%.3g s", *t->recompute());
        std::fprintf(out,
                     "  stage %zu: forward %.3g s, backward %.3g s (recompute %s), send_forward "
                     "%.3g s, send_backward %.3g s per micro-batch; step %.3g s\n",
                     s, t->forward(), t->backward(), recompute, t->send_forward(),
                     t->send_backward(), t->step());
      }
  }
  if (p.mesh_shape() && p.mesh_shape()->size()) {
    std::string mesh;
    for (size_t a = 0; a < p.mesh_shape()->size(); ++a)
      mesh += std::string(a ? " x " : "") +
              (p.mesh_axes() && a < p.mesh_axes()->size() ? p.mesh_axes()->Get(a)->str() + " "
                                                          : std::string()) +
              std::to_string(p.mesh_shape()->Get(a));
    std::fprintf(out, "mesh: %s (plan %s)\n", mesh.c_str(),
                 p.parallel_plan() ? p.parallel_plan()->c_str() : "?");
  }
  size_t stages = p.pipeline() && p.pipeline()->stages() ? p.pipeline()->stages()->size() : 1;
  if (stages > 1) {
    std::string onStages = p.pipeline()->recompute_stages() > 0
                               ? " on the first " + std::to_string(p.pipeline()->recompute_stages()) +
                                     (p.pipeline()->recompute_stages() == 1 ? " stage" : " stages")
                               : "";
    std::string chunksText = p.pipeline()->chunks() > 1
                                 ? " of " + std::to_string(p.pipeline()->chunks()) + " chunks"
                                 : "";
    std::fprintf(out, "pipeline: %zu stages%s, %d micro-batches, schedule %s, recompute %s%s\n",
                 stages, chunksText.c_str(), p.pipeline()->micro_batches(),
                 p.pipeline()->schedule() ? p.pipeline()->schedule()->c_str() : "?",
                 p.pipeline()->recompute() ? p.pipeline()->recompute()->c_str() : "none",
                 onStages.c_str());
    // With interleaving, a stage's layers are those of its chunks s, s + stages, ...
    const auto *chunkLayers = p.pipeline()->chunk_layers();
    size_t chunks = chunkLayers && p.pipeline()->chunks() > 1 &&
                            chunkLayers->size() == stages * size_t(p.pipeline()->chunks())
                        ? size_t(p.pipeline()->chunks())
                        : 1;
    auto range = [](const plan::StageSpec *st) {
      return st->num_layers() == 1 ? std::to_string(st->first_layer())
                                   : std::to_string(st->first_layer()) + "-" +
                                         std::to_string(st->first_layer() + st->num_layers() - 1);
    };
    for (size_t s = 0; s < stages; ++s) {
      const plan::StageSpec *st = p.pipeline()->stages()->Get(s);
      std::string layers;
      if (chunks > 1)
        for (size_t c = 0; c < chunks; ++c)
          layers += (c ? ", " : "") + range(chunkLayers->Get(flatbuffers::uoffset_t(c * stages + s)));
      else
        layers = std::to_string(st->first_layer()) + "-" +
                 std::to_string(st->first_layer() + st->num_layers() - 1);
      std::fprintf(out, "  stage %zu: %slayers %s%s\n", s, st->embedding() ? "embedding, " : "",
                   layers.c_str(), st->head() ? ", norm, LM head, loss" : "");
    }
  }
  // One program per stage, run by every device with that coordinate on "pp".
  std::vector<std::vector<int64_t>> stageRanks = plan::stageRanks(p);
  for (size_t index = 0; index < p.programs()->size(); ++index) {
    const plan::Program *prog = p.programs()->Get(flatbuffers::uoffset_t(index));
    const auto &buffers = *prog->buffers();
    std::string who = p.programs()->size() > 1
                          ? "stage " + std::to_string(prog->stage()) + " (" +
                                ranksText(stageRanks[index]) + ")"
                          : "every device (" + ranksText(stageRanks[index]) + ")";
    std::fprintf(out, "program for %s: %u buffers, %u instructions, arena %llu bytes%s\n",
                 who.c_str(), buffers.size(), prog->instructions()->size(),
                 (unsigned long long)prog->arena_bytes(),
                 prog->num_events() ? (", " + std::to_string(prog->num_events()) + " events")
                                          .c_str()
                                    : "");
    for (size_t b = 0; b < buffers.size(); ++b) {
      const plan::Buffer *buf = buffers.Get(b);
      std::fprintf(out, "  b%-4zu %-14s %-5s %-22s", b, plan::EnumNameBufferKind(buf->kind()),
                   plan::EnumNameDType(buf->dtype()), shape(buf->shape()).c_str());
      if (buf->kind() == plan::BufferKind::Arena)
        std::fprintf(out, " @%llu", (unsigned long long)buf->offset());
      if (buf->kind() == plan::BufferKind::Alias)
        std::fprintf(out, " = b%d", buf->alias_of());
      if (buf->binding() != plan::Binding::None)
        std::fprintf(out, " <%s>", plan::EnumNameBinding(buf->binding()));
      if (buf->dim_axes() && buf->dim_axes()->size()) {
        std::string axes = "[";
        for (size_t d = 0; d < buf->dim_axes()->size(); ++d)
          axes += (d ? ", " : "") + std::to_string(buf->dim_axes()->Get(d));
        std::fprintf(out, " split %s]", axes.c_str());
      }
      std::fprintf(out, " %s\n", buf->name() ? buf->name()->c_str() : "");
    }
    size_t k = 0;
    for (const plan::Instruction *inst : *prog->instructions()) {
      std::string line = "  i" + std::to_string(k++) + " " + inst->kernel()->str() + "(";
      if (inst->inputs())
        for (size_t i = 0; i < inst->inputs()->size(); ++i)
          line += (i ? ", b" : "b") + std::to_string(inst->inputs()->Get(i));
      line += ") -> (";
      if (inst->outputs())
        for (size_t i = 0; i < inst->outputs()->size(); ++i)
          line += (i ? ", b" : "b") + std::to_string(inst->outputs()->Get(i));
      line += ")";
      if (inst->attributes())
        for (const plan::Attribute *a : *inst->attributes())
          line += " " + attribute(*a);
      // Where it sits in the step: pass, micro-batch, layer.
      std::string at;
      if (inst->pass() != plan::Pass::Other)
        at += plan::EnumNamePass(inst->pass());
      if (inst->micro_batch() >= 0)
        at += std::string(at.empty() ? "" : " ") + "mb " + std::to_string(inst->micro_batch());
      if (inst->layer() != -1)
        at += std::string(at.empty() ? "" : " ") + "layer " + layerText(inst->layer(), m);
      if (!at.empty())
        line += "  {" + at + "}";
      // Its stream and events (version 5), where it is not plain program order.
      std::string order;
      if (inst->stream() != 0)
        order += "stream " + std::to_string(inst->stream());
      if (inst->wait_events() && inst->wait_events()->size()) {
        order += std::string(order.empty() ? "" : ", ") + "waits";
        for (uint32_t e : *inst->wait_events())
          order += " e" + std::to_string(e);
      }
      if (inst->record_event() >= 0)
        order += std::string(order.empty() ? "" : ", ") + "records e" +
                 std::to_string(inst->record_event());
      if (!order.empty())
        line += "  [" + order + "]";
      std::fprintf(out, "%s\n", line.c_str());
    }
  }
}

} // namespace apc::tools
