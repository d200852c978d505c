// aprun's loop. The order of work per step: choose rows (sampler), fill the batch,
// set step and lr, run the program, read loss and grad norm, report, maybe checkpoint.
#include "runtime/train/Trainer.h"

#include "runtime/checkpoint/Checkpoint.h"
#include "runtime/comm/Bootstrap.h"
#include "runtime/comm/Communicator.h"
#include "runtime/comm/GlooCommunicator.h"
#include "runtime/comm/TcpStore.h"
#include "runtime/data/ArrowFile.h"
#include "runtime/exec/Executor.h"
#include "runtime/plan/DeviceProgram.h"
#include "runtime/plan/PlanLoader.h"
#include "runtime/plan/PlanTypes.h"
#include "runtime/support/CheckedMath.h"
#include "runtime/support/MeshCoordinates.h"
#include "runtime/data/TextDataset.h"
#include "runtime/tokenizer/Tokenizer.h"
#include "runtime/train/BatchBuilder.h"
#include "runtime/train/Profile.h"
#include "runtime/train/Sampler.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace apc::train {
namespace {

TrainOutcome usageError(const std::string &message) { return {2, message}; }
TrainOutcome runtimeError(const std::string &message) { return {1, message}; }

// --profile: writes this rank's file (if it writes one) and, on the leader, prints the
// kernels that took the most time.
Status reportProfile(const TrainOptions &o, const exec::Executor &exec, int rank, int stage,
                     int threads, const std::vector<double> &stepTimes, bool quiet) {
  ProfileRun run;
  run.planPath = o.planPath;
  run.rank = rank;
  run.stage = stage;
  run.threads = threads;
  run.stepsProfiled = int64_t(stepTimes.size()) - 1;
  if (run.stepsProfiled < 1)
    return Status::error("--profile needs at least 2 steps run (the first is not timed)");
  std::vector<double> steady(stepTimes.begin() + 1, stepTimes.end());
  std::nth_element(steady.begin(), steady.begin() + steady.size() / 2, steady.end());
  run.medianStepSeconds = steady[steady.size() / 2];
  if (!quiet)
    std::printf("%s", profileSummary(exec, run, 8).c_str());
  std::string path = profilePathOf(o.profilePath, rank);
  if (path.empty())
    return Status::ok();
  if (Status s = writeProfile(path, exec, run); !s)
    return s;
  if (!quiet)
    std::printf("wrote %s\n", path.c_str());
  return Status::ok();
}

// The Hugging Face config.json of the plan's model, so checkpoints load in transformers.
std::string huggingFaceConfig(const plan::ModelConfig &m) {
  nlohmann::json j = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_act", "silu"},
      {"hidden_size", m.hidden_size()},
      {"intermediate_size", m.intermediate_size()},
      {"num_hidden_layers", m.num_hidden_layers()},
      {"num_attention_heads", m.num_attention_heads()},
      {"num_key_value_heads", m.num_key_value_heads()},
      {"head_dim", m.head_dim()},
      {"vocab_size", m.vocab_size()},
      {"max_position_embeddings", m.max_position_embeddings()},
      {"rope_theta", m.rope_theta()},
      {"rms_norm_eps", m.rms_norm_eps()},
      {"initializer_range", m.initializer_range()},
      {"tie_word_embeddings", m.tie_word_embeddings()},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"torch_dtype", "float32"},
      {"rope_scaling", nullptr}};
  if (m.rope_type() && m.rope_type()->str() == "llama3")
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", m.rope_factor()},
                         {"low_freq_factor", m.rope_low_freq_factor()},
                         {"high_freq_factor", m.rope_high_freq_factor()},
                         {"original_max_position_embeddings",
                          m.rope_original_max_position_embeddings()}};
  return j.dump(2) + "\n";
}

std::string formatDuration(double seconds) {
  long s = long(std::max(0.0, seconds) + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

kernels::Attribute floatAttr(const char *name, double value) {
  kernels::Attribute a;
  a.name = name;
  a.kind = kernels::Attribute::Kind::Float;
  a.f = value;
  return a;
}

// "3, 8, 1, ... (64 rows)": the dataset rows of a batch, for messages.
std::string describeRows(const std::vector<int64_t> &rows) {
  std::string text;
  for (size_t i = 0; i < rows.size() && i < 4; ++i)
    text += (i ? ", " : "") + std::to_string(rows[i]);
  if (rows.size() > 4)
    text += ", ... (" + std::to_string(rows.size()) + " rows)";
  return text;
}

kernels::Attribute boolAttr(const char *name, bool value) {
  kernels::Attribute a;
  a.name = name;
  a.kind = kernels::Attribute::Kind::Bool;
  a.b = value;
  return a;
}

} // namespace

Result<ProgramBinding> bindProgram(const plan::Plan &plan, int rank,
                                   const std::function<float *(int buffer)> &bufferData) {
  using R = Result<ProgramBinding>;
  std::vector<int64_t> mesh;
  if (plan.mesh_shape())
    mesh.assign(plan.mesh_shape()->begin(), plan.mesh_shape()->end());
  std::vector<int64_t> coords = coordinatesOf(rank, mesh);
  const plan::Program *program = plan::programOf(plan, rank);
  if (!program)
    return R::error("no program for device " + std::to_string(rank));

  ProgramBinding binding;
  binding.stage = program->stage();
  size_t numStages = 1;
  bool embedding = true, head = true;
  const plan::PipelineSpec *pipeline = plan.pipeline();
  if (pipeline && pipeline->stages() && pipeline->stages()->size() > 0) {
    numStages = pipeline->stages()->size();
    if (binding.stage < 0 || size_t(binding.stage) >= numStages)
      return R::error("program " + std::to_string(rank) + " is stage " +
                      std::to_string(binding.stage) + " but the pipeline has " +
                      std::to_string(numStages) + " stage" + (numStages == 1 ? "" : "s"));
    const plan::StageSpec *stage = pipeline->stages()->Get(flatbuffers::uoffset_t(binding.stage));
    embedding = stage->embedding();
    head = stage->head();
  }

  checkpoint::CheckpointContents &slots = binding.slots;
  size_t numParameters = plan.parameters()->size();
  std::array<std::vector<checkpoint::ParameterSlot> *, 3> lists = {
      &slots.parameters, &slots.expAvg, &slots.expAvgSq};
  for (int k = 0; k < 3; ++k)
    lists[k]->resize(numParameters);
  for (size_t p = 0; p < numParameters; ++p) {
    const plan::ParameterSpec *spec = plan.parameters()->Get(flatbuffers::uoffset_t(p));
    for (int k = 0; k < 3; ++k) {
      checkpoint::ParameterSlot &slot = (*lists[k])[p];
      slot.name = spec->name()->str();
      slot.shape.assign(spec->shape()->begin(), spec->shape()->end());
      slot.init = spec->init() ? spec->init()->str() : "normal";
    }
  }
  auto kindOf = [](const plan::Buffer *buffer) {
    if (buffer->kind() == plan::BufferKind::Parameter)
      return 0;
    if (buffer->kind() != plan::BufferKind::OptimizerState)
      return -1;
    return buffer->optimizer_slot() && buffer->optimizer_slot()->str() == "exp_avg" ? 1 : 2;
  };
  const char *kindName[3] = {"parameter", "exp_avg", "exp_avg_sq"};
  // Who holds what, over every program; the split is the same everywhere (PlanLoader).
  std::vector<std::vector<int>> dimAxes[3];
  std::vector<bool> known[3];
  for (int k = 0; k < 3; ++k) {
    dimAxes[k].resize(numParameters);
    known[k].resize(numParameters);
  }
  // Each stage's program is run by the ranks with that coordinate on "pp" (all of them
  // without one); a tensor's holders are those of the stages holding it.
  std::vector<std::vector<int64_t>> stageRanks = plan::stageRanks(plan);
  for (flatbuffers::uoffset_t qi = 0; qi < plan.programs()->size(); ++qi) {
    const plan::Program *q = plan.programs()->Get(qi);
    const auto &buffers = *q->buffers();
    for (int b = 0; b < int(buffers.size()); ++b) {
      const plan::Buffer *buffer = buffers.Get(flatbuffers::uoffset_t(b));
      int k = kindOf(buffer);
      if (k < 0)
        continue;
      size_t p = size_t(buffer->parameter());
      checkpoint::ParameterSlot &slot = (*lists[k])[p];
      if (!known[k][p] && buffer->dim_axes())
        dimAxes[k][p].assign(buffer->dim_axes()->begin(), buffer->dim_axes()->end());
      known[k][p] = true;
      for (int r : stageRanks[qi])
        if (slot.holders.empty() || slot.holders.back() != r)
          slot.holders.push_back(r);
      if (q != program)
        continue;
      // The runtime loads, initialises and saves one buffer per parameter and moment.
      if (slot.data)
        return R::error("program " + std::to_string(rank) + " has two " + kindName[k] +
                        " buffers for '" + slot.name + "'");
      slot.data = bufferData(b);
    }
  }
  int64_t devices = plan::deviceCount(plan);
  for (int k = 0; k < 3; ++k)
    for (size_t p = 0; p < numParameters; ++p) {
      checkpoint::ParameterSlot &slot = (*lists[k])[p];
      if (slot.holders.empty())
        return R::error("parameter '" + slot.name + "' is held by no program: no program has its " +
                        kindName[k] + " buffer");
      if (!slot.data && numStages == 1)
        return R::error("parameter '" + slot.name + "' has no " + kindName[k] +
                        " buffer in program " + std::to_string(rank) +
                        " (only a pipeline plan leaves parameters to other programs)");
      std::sort(slot.holders.begin(), slot.holders.end());
      slot.holders.erase(std::unique(slot.holders.begin(), slot.holders.end()),
                         slot.holders.end());
      if (int64_t(slot.holders.size()) == devices)
        slot.holders.clear(); // every rank: the one-device gather, no holders needed
      slot.block = checkpoint::blockOf(slot.shape, dimAxes[k][p], mesh, coords);
    }

  const auto &buffers = *program->buffers();
  for (int b = 0; b < int(buffers.size()); ++b) {
    const plan::Buffer *buffer = buffers.Get(flatbuffers::uoffset_t(b));
    if (buffer->kind() != plan::BufferKind::Input)
      continue;
    switch (buffer->binding()) {
    case plan::Binding::InputIds: binding.ids = b; break;
    case plan::Binding::Labels: binding.labels = b; break;
    case plan::Binding::Step: binding.step = b; break;
    case plan::Binding::LearningRate: binding.lr = b; break;
    default: break;
    }
  }
  std::vector<std::string> missing;
  if (embedding && binding.ids < 0)
    missing.push_back("input_ids");
  if (head && binding.labels < 0)
    missing.push_back("labels");
  if (binding.step < 0)
    missing.push_back("step");
  if (binding.lr < 0)
    missing.push_back("lr");
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size(); ++i)
      list += (i == 0 ? "" : i + 1 == missing.size() ? " and " : ", ") + missing[i];
    std::string where = numStages > 1 ? "program " + std::to_string(rank) + " (stage " +
                                            std::to_string(binding.stage) + ")"
                                      : "the program";
    return R::error(where + " lacks its " + list + " input" + (missing.size() == 1 ? "" : "s"));
  }
  return binding;
}

TrainOutcome train(const TrainOptions &o) {
  // ---- Plan and program ----
  auto loaded = plan::LoadedPlan::load(o.planPath);
  if (!loaded)
    return usageError(loaded.message());
  const plan::Plan &plan = loaded->plan();
  if (Status s = plan::checkBackendBuilt(plan, o.planPath); !s)
    return usageError(s.message());

  // ---- Processes: one rank per device of the plan's mesh ----
  auto process = comm::detectProcess();
  if (!process)
    return usageError(process.message());
  std::vector<int64_t> mesh;
  if (plan.mesh_shape())
    mesh.assign(plan.mesh_shape()->begin(), plan.mesh_shape()->end());
  int64_t devices = 1;
  for (int64_t d : mesh)
    devices *= d;
  std::string planName = plan.parallel_plan() ? plan.parallel_plan()->str() : "dp=1";
  if (process->worldSize != devices)
    return usageError(o.planPath + ": the plan is for " + std::to_string(devices) +
                      " device" + (devices == 1 ? "" : "s") + " (" + planName + ") but this job has " +
                      std::to_string(process->worldSize) + " process" +
                      (process->worldSize == 1 ? "" : "es") +
                      "; run it with aprun --nproc " + std::to_string(devices) +
                      " (or torchrun --nproc-per-node " + std::to_string(devices) + ")");
  int rank = process->rank;
  bool leader = rank == 0; // prints, writes metrics and checkpoints
  std::chrono::milliseconds commTimeout(int64_t(o.commTimeoutSeconds) * 1000);
  std::unique_ptr<comm::TcpStore> store;
  std::vector<int64_t> worldAxes;
  for (size_t a = 0; a < mesh.size(); ++a)
    worldAxes.push_back(int64_t(a));
  std::map<std::vector<int64_t>, std::unique_ptr<comm::Communicator>> groups;
  // A run that ends in an error leaves the store without waiting for the other ranks
  // (they are failing too, or dead): one --comm-timeout, not two.
  struct AbandonOnError {
    std::unique_ptr<comm::TcpStore> &store;
    bool finished = false;
    ~AbandonOnError() {
      if (!finished && store)
        store->abandon();
    }
  } abandonOnError{store};
  if (process->multiProcess()) {
    if (leader && !o.quiet && process->jobTokenSource != "APC_JOB_TOKEN")
      std::printf("aprun: job token: %s (shared by the %s ranks of this job; export "
                  "APC_JOB_TOKEN for a secret one)\n",
                  process->jobTokenSource.empty() ? "none (APC_ALLOW_NO_TOKEN=1)"
                                                  : process->jobTokenSource.c_str(),
                  process->launcher.c_str());
    auto created = comm::TcpStore::create(*process, commTimeout);
    if (!created)
      return runtimeError("rank " + std::to_string(rank) + ": " + created.message());
    store = std::move(*created);
    // Every rank creates the same groups in the same order: those of every collective
    // of every program, and the world (all axes) for gathering checkpoints.
    std::set<std::vector<int64_t>> needed = {worldAxes};
    for (const plan::Program *program : *plan.programs())
      for (const plan::Instruction *inst : *program->instructions())
        if (exec::isCollectiveKernel(inst->kernel()->str()) && inst->attributes())
          for (const plan::Attribute *a : *inst->attributes())
            if (a->name()->str() == "axes" && a->ints())
              needed.insert(std::vector<int64_t>(a->ints()->begin(), a->ints()->end()));
    for (const std::vector<int64_t> &axes : needed) {
      // Named by axes and members: the ranks of one axis form several disjoint groups
      // (dp groups {0,2} and {1,3} on a 2x2 mesh), each with its own rendezvous.
      std::vector<int> members = groupRanks(rank, mesh, axes);
      std::string name = "axes";
      for (int64_t a : axes)
        name += "-" + std::to_string(a);
      name += "/ranks";
      for (int m : members)
        name += "-" + std::to_string(m);
      auto communicator =
          comm::createGlooCommunicator(*store, *process, members, name, commTimeout);
      if (!communicator)
        return runtimeError("rank " + std::to_string(rank) + ": " + communicator.message());
      groups[axes] = std::move(*communicator);
    }
  }
  exec::GroupLookup lookup = [&](const std::vector<int64_t> &axes) -> comm::Communicator * {
    auto it = groups.find(axes);
    return it == groups.end() ? nullptr : it->second.get();
  };
  comm::SingleProcessCommunicator alone;
  comm::Communicator *world = store ? lookup(worldAxes) : &alone;
  std::vector<int64_t> coords = coordinatesOf(rank, mesh);
  // The data-parallel coordinate (mesh axis 0, "dp"): this rank's share of each global
  // batch. Ranks that differ only on the other axes (tensor or sequence parallel) get the
  // same rows.
  int64_t dpIndex = 0, dpSize = 1;
  if (!mesh.empty()) {
    dpSize = mesh[0];
    dpIndex = coords[0];
  }

  kernels::KernelContext context;
  context.threads = std::max(1, o.threads);
  // APC_CPU_DEVICE=detached: the CPU backend's memory reached only by upload and download,
  // as a GPU's, so that a CPU run checks the loop's host/device discipline (docs/testing.md).
  const char *cpuDevice = std::getenv("APC_CPU_DEVICE");
  const bool forCuda = plan.backend() && plan.backend()->str() == "cuda";
  const exec::Backend &backend = forCuda ? *exec::cudaBackend() // checkBackendBuilt: built
                                 : cpuDevice && std::string_view(cpuDevice) == "detached"
                                     ? exec::detachedCpuBackend()
                                     : exec::cpuBackend();
  auto executor = exec::Executor::create(plan, /*device=*/rank, backend, context, lookup);
  if (!executor && forCuda) {
    const plan::Prediction *predicted = plan.predicted();
    return usageError(o.planPath + ": compiled for " +
                      (predicted && predicted->cluster() ? predicted->cluster()->str() : "cuda") +
                      ": " + executor.message());
  }
  if (!executor)
    return usageError(o.planPath + ": " + executor.message());
  exec::Executor &exec = **executor;
  for (auto [name, value] : {std::pair{"weight_decay", o.weightDecay}, {"beta1", o.beta1},
                             {"beta2", o.beta2}, {"epsilon", o.epsilon},
                             {"max_grad_norm", o.maxGradNorm}}) {
    if (!value)
      continue;
    bool clippingOff = std::string_view(name) == "max_grad_norm" && *value == 0.0;
    Status s = clippingOff ? exec.removeAttribute("adamw", name)
                           : exec.setAttribute("adamw", floatAttr(name, *value));
    if (!s)
      return usageError(o.planPath + ": " + s.message());
  }

  if (o.skipNonFiniteSteps) {
    if (exec.program().grad_norm() < 0)
      return usageError(o.planPath + ": --skip-non-finite-steps needs a plan whose step "
                                     "computes the gradient norm; recompile it");
    if (Status s = exec.setAttribute("adamw", boolAttr("skip_non_finite", true)); !s)
      return usageError(o.planPath + ": " + s.message());
  }

  // ---- Buffers the loop reads and writes ----
  // Under a pipeline plan this rank's program holds its stage's parameters only, and
  // input_ids (labels) only on the stage with the embedding (the head).
  const plan::Program &program = exec.program();
  // The parameters and moments as the host sees them (loaded, initialised, saved there).
  auto bound = bindProgram(plan, rank, [&](int b) { return exec.hostView(b).as<float>(); });
  if (!bound)
    return usageError(o.planPath + ": " + bound.message());
  checkpoint::CheckpointContents &slots = bound->slots;
  int idsBuffer = bound->ids, labelsBuffer = bound->labels;
  int stepBuffer = bound->step, lrBuffer = bound->lr;

  // ---- Data ----
  // Token-id files are read in place; text datasets are tokenized up front, in parallel,
  // truncated to seq_len (docs/data.md).
  int64_t batch = plan.data()->batch(), seqLen = plan.data()->seq_len();
  int64_t vocab = plan.model()->vocab_size();
  std::optional<int64_t> padId = o.padId;
  std::optional<data::ArrowFile> file;
  data::IntListColumn column;
  data::TokenRows tokenRows;
  std::unique_ptr<BatchBuilder> builder;
  int64_t numRows = 0;
  if (o.tokenizerPath.empty()) {
    auto opened = data::ArrowFile::open(o.dataPath);
    if (!opened)
      return runtimeError(opened.message());
    auto found = opened->intListColumn(o.column);
    if (!found)
      return runtimeError(found.message());
    int64_t firstNull = -1;
    if (int64_t nulls = found->nullCount(&firstNull); nulls > 0)
      return runtimeError(data::nullRowsMessage(o.dataPath, o.column, nulls, firstNull));
    column = std::move(*found);
    file.emplace(std::move(*opened));
    numRows = column.numRows();
    // As with --tokenizer: the tokenizer's pad_token (recorded by apc data tokenize), else
    // the plan's pad_id, else the tokenizer's eos_token (recorded in its place).
    if (!padId) {
      auto recorded = data::recordedPadId(*file, vocab);
      if (!recorded)
        return runtimeError(recorded.message());
      std::string recordedFrom =
          file->schemaMetadata(data::kPadFromMetadataKey).value_or("pad id");
      bool recordedFirst = *recorded && recordedFrom == "pad_token";
      if (!recordedFirst && plan.data()->pad_id() >= 0)
        padId = plan.data()->pad_id();
      if (!padId && *recorded) {
        padId = **recorded;
        if (!o.quiet && leader)
          std::printf("aprun: padding with id %lld, recorded in %s by apc data tokenize (the "
                      "tokenizer's %s; padded positions never count in the loss%s; --pad-id N "
                      "to choose)\n",
                      (long long)*padId, o.dataPath.c_str(), recordedFrom.c_str(),
                      o.maskPadIdTokens && recordedFrom == "eos_token"
                          ? ", but --mask-pad-id-tokens also masks every real eos label"
                          : "");
      }
    }
  } else {
    auto tok = tokenizer::Tokenizer::load(o.tokenizerPath);
    if (!tok)
      return runtimeError(tok.message());
    if (tok->vocabSize() > vocab)
      return usageError(o.tokenizerPath + ": the tokenizer has " +
                        std::to_string(tok->vocabSize()) + " ids but " + o.planPath +
                        "'s vocab_size is " + std::to_string(vocab));
    if (!padId) {
      auto configured = data::padIdFromTokenizerConfig(o.tokenizerPath, *tok);
      if (!configured)
        return runtimeError(configured.message());
      if (*configured >= 0)
        padId = *configured;
      else if (plan.data()->pad_id() >= 0)
        padId = plan.data()->pad_id();
      if (!padId) {
        // Llama 3's tokenizer names no pad token: pad with its eos, as transformers users
        // set it (tokenizer.pad_token = tokenizer.eos_token). Padded positions never
        // count in the loss, so the id only has to be a valid one.
        auto eos = data::padIdFromTokenizerConfig(o.tokenizerPath, *tok, "eos_token");
        if (!eos)
          return runtimeError(eos.message());
        if (*eos < 0)
          return usageError("no pad id is known: pass --pad-id N (" + o.tokenizerPath +
                            "'s tokenizer_config.json has no pad_token or eos_token and " +
                            o.planPath + " has no pad_id)");
        padId = *eos;
        if (!o.quiet && leader)
          std::printf("aprun: padding with id %lld, the tokenizer's eos_token (its "
                      "tokenizer_config.json names no pad_token; padded positions never count "
                      "in the loss%s; --pad-id N to choose)\n",
                      (long long)*eos,
                      o.maskPadIdTokens ? ", but --mask-pad-id-tokens also masks every real "
                                          "eos label"
                                        : "");
      }
    }
    auto prompt = data::PromptTemplate::parse(
        o.promptTemplate.empty() ? std::string(data::kDefaultTemplate) : o.promptTemplate);
    if (!prompt)
      return usageError(prompt.message());
    auto files = data::resolveDataFiles(o.dataPath);
    if (!files)
      return runtimeError(files.message());
    auto text = data::TextDataset::open(*files, *prompt);
    if (!text)
      return runtimeError(text.message());
    data::TokenizeOptions topts;
    topts.maxLength = seqLen;
    topts.threads = context.threads;
    auto tStart = std::chrono::steady_clock::now();
    Status s = data::tokenizeDataset(
        *text, *tok, topts,
        [&](int64_t, const std::vector<std::vector<int32_t>> &rows) {
          for (const auto &r : rows) {
            tokenRows.ids.insert(tokenRows.ids.end(), r.begin(), r.end());
            tokenRows.offsets.push_back(int64_t(tokenRows.ids.size()));
          }
          return Status::ok();
        });
    if (!s)
      return runtimeError(o.dataPath + ": " + s.message());
    numRows = tokenRows.numRows();
    if (!o.quiet && leader)
      std::printf("tokenized %s (%zu file%s): %lld rows, %lld tokens in %.1f s, %d threads\n",
                  o.dataPath.c_str(), files->size(), files->size() == 1 ? "" : "s",
                  (long long)numRows, (long long)tokenRows.ids.size(),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - tStart).count(),
                  context.threads);
  }
  if (numRows < batch)
    return runtimeError(o.dataPath + ": " + std::to_string(numRows) +
                        " rows, fewer than one batch of " + std::to_string(batch));
  if (o.tokenizerPath.empty())
    builder = std::make_unique<BatchBuilder>(column, seqLen, padId, vocab, o.maskPadIdTokens);
  else
    builder = std::make_unique<BatchBuilder>(tokenRows, seqLen, padId, vocab, o.maskPadIdTokens);
  // Without a pad id every row must fill seq_len: checked over the whole dataset now, not
  // when the first short row's batch comes up (hours in, on real data).
  if (auto shortRow = builder->firstShortRow(numRows))
    return usageError(o.dataPath + ": row " + std::to_string(shortRow->first) + " has " +
                      std::to_string(shortRow->second) + " tokens, fewer than " + o.planPath +
                      "'s seq_len " + std::to_string(seqLen) +
                      ", and no pad id is known: pass --pad-id N (checked before the first "
                      "step, over all " + std::to_string(numRows) + " rows)");

  // ---- Weights, or a checkpoint to resume ----
  checkpoint::TrainerState state;
  state.seed = o.seed;
  state.numRows = numRows;
  state.dataPath = o.dataPath;
  state.batch = batch;
  state.seqLen = seqLen;
  if (!o.resumeDir.empty()) {
    std::vector<std::string> passedOver;
    auto folder = checkpoint::findCheckpoint(o.resumeDir, &passedOver);
    if (!folder)
      return runtimeError(folder.message());
    for (const std::string &newer : leader ? passedOver : std::vector<std::string>{})
      std::fprintf(stderr, "aprun: warning: resuming from %s, not from the newer %s: it is "
                           "incomplete\n",
                   folder->c_str(), newer.c_str());
    auto resumed = checkpoint::loadCheckpoint(*folder, slots);
    if (!resumed)
      return runtimeError(resumed.message());
    if (resumed->numRows != numRows)
      return runtimeError(*folder + ": the checkpoint was trained on " +
                          std::to_string(resumed->numRows) + " rows but " + o.dataPath +
                          " has " + std::to_string(numRows));
    if (resumed->batch != batch || resumed->seqLen != seqLen)
      return runtimeError(*folder + ": the checkpoint was trained with batch " +
                          std::to_string(resumed->batch) + " x seq " +
                          std::to_string(resumed->seqLen) + " but " + o.planPath +
                          " has batch " + std::to_string(batch) + " x seq " +
                          std::to_string(seqLen) + "; resume with a plan of the same shape");
    if (resumed->batchInEpoch >= numRows / batch)
      return runtimeError(*folder + ": batch_in_epoch " + std::to_string(resumed->batchInEpoch) +
                          " is beyond the " + std::to_string(numRows / batch) +
                          " batches of an epoch");
    if (o.seedGiven && resumed->seed != o.seed && leader)
      std::fprintf(stderr, "aprun: note: --seed %llu is not used: a resumed run keeps the "
                           "seed of its checkpoint (%llu), so its batches stay in order\n",
                   (unsigned long long)o.seed, (unsigned long long)resumed->seed);
    state = *resumed;
    state.dataPath = o.dataPath;
    if (!o.quiet && leader)
      std::printf("resumed from %s at step %lld (epoch %lld, batch %lld)\n", folder->c_str(),
                  (long long)state.step, (long long)state.epoch, (long long)state.batchInEpoch);
  } else if (!o.weightsPath.empty()) {
    std::vector<std::string> unused;
    if (Status s = checkpoint::loadWeights(o.weightsPath, slots.parameters, &unused); !s)
      return runtimeError(s.message());
    for (const std::string &name : leader ? unused : std::vector<std::string>{})
      std::fprintf(stderr, "aprun: warning: %s: tensor '%s' is not a parameter of the plan, "
                           "ignored\n", o.weightsPath.c_str(), name.c_str());
  } else {
    checkpoint::initWeights(slots.parameters, plan.model()->initializer_range(), o.seed);
  }
  if (Status s = exec.pushAll(); !s) // the state just loaded or initialised, to the device
    return runtimeError(s.message());

  Sampler sampler(numRows, batch, state.seed, o.shuffle);
  std::optional<int64_t> planned = o.steps > 0 ? o.steps
                                               : checkedMul(o.epochs, sampler.batchesPerEpoch());
  if (!planned)
    return usageError("--epochs " + std::to_string(o.epochs) + " x " +
                      std::to_string(sampler.batchesPerEpoch()) +
                      " steps per epoch is more steps than a 64-bit count holds");
  int64_t total = *planned;
  Schedule schedule = o.schedule;
  schedule.totalSteps = total;
  if (Status s = schedule.validate(); !s)
    return usageError(s.message());
  if (total <= state.step)
    return usageError("nothing to do: the run ends at step " + std::to_string(total) +
                      " and the checkpoint is at step " + std::to_string(state.step));

  std::ofstream metrics;
  // A run that fails before its first step leaves no empty metrics file behind.
  struct RemoveIfEmpty {
    std::string path;
    bool wrote = false;
    ~RemoveIfEmpty() {
      std::error_code ec;
      if (!path.empty() && !wrote && std::filesystem::file_size(path, ec) == 0 && !ec)
        std::filesystem::remove(path, ec);
    }
  } metricsGuard;
  if (!o.metricsPath.empty() && leader) {
    metrics.open(o.metricsPath, o.resumeDir.empty() ? std::ios::trunc : std::ios::app);
    if (!metrics)
      return runtimeError(o.metricsPath + ": cannot open for writing");
    metricsGuard.path = o.metricsPath;
  }
  bool quiet = o.quiet || !leader;
  if (!quiet)
    std::printf("training %s on %s: %lld rows, batch %lld x seq %lld, %lld steps "
                "(%lld per epoch), %s, arena %.1f MiB, %d threads, %lld device%s (%s)\n",
                o.planPath.c_str(), o.dataPath.c_str(), (long long)numRows,
                (long long)batch, (long long)seqLen, (long long)total,
                (long long)sampler.batchesPerEpoch(),
                plan.precision() ? plan.precision()->c_str() : "?",
                double(exec.arenaBytes()) / 1048576.0, context.threads, (long long)devices,
                devices == 1 ? "" : "s", planName.c_str());
  // The cost model's figure for this plan (apc compile's prediction), to compare with the
  // tok/s of the step lines and the measured / predicted ratio at the end.
  const plan::Prediction *predicted = plan.predicted();
  double predictedTokensPerSecond =
      predicted && predicted->seconds_per_step() > 0
          ? double(batch * seqLen) / predicted->seconds_per_step()
          : 0.0;
  if (!quiet && predictedTokensPerSecond > 0)
    std::printf("predicted: %.0f tok/s (%.3g s per step on %s; docs/cost-model.md)\n",
                predictedTokensPerSecond, predicted->seconds_per_step(),
                predicted->cluster() ? predicted->cluster()->c_str() : "?");
  std::fflush(stdout);

  // Every rank saves at the same steps: split tensors are gathered to rank 0, which
  // writes and tells the others whether it could.
  auto save = [&]() -> Status {
    slots.configJson = huggingFaceConfig(*plan.model());
    slots.state = state;
    APC_RETURN_IF_ERROR(exec.pullAll()); // the device's state, to the host views saved

    auto path = checkpoint::saveCheckpoint(o.saveDir, slots, *world, mesh);
    if (!path)
      return path.status();
    if (!quiet)
      std::printf("saved %s\n", path->c_str());
    return Status::ok();
  };

  // A stage without input_ids or labels still builds the rows (and checks them, as
  // every rank does) into scratch tensors of the same shape.
  DType idsType = plan::toDType(plan.data()->ids_dtype()); // I32 or I64 (PlanLoader)
  std::vector<int64_t> scratch(size_t(batch / dpSize * seqLen) * 2);
  kernels::TensorView scratchIds{scratch.data(), idsType, {batch / dpSize, seqLen}};
  kernels::TensorView scratchLabels{scratch.data() + scratch.size() / 2, idsType,
                                    {batch / dpSize, seqLen}};

  auto start = std::chrono::steady_clock::now();
  int64_t firstStep = state.step;
  const float *loss = exec.hostView(program.loss()).as<float>();
  const float *gradNorm =
      program.grad_norm() >= 0 ? exec.hostView(program.grad_norm()).as<float>() : nullptr;
  int64_t skippedSteps = 0;
  std::vector<double> stepTimes; // seconds of each step run, for measured / predicted
  while (state.step < total) {
    auto stepStart = std::chrono::steady_clock::now();
    std::vector<int64_t> globalRows = sampler.batch(state.epoch, state.batchInEpoch);
    int64_t share = batch / dpSize;
    std::vector<int64_t> rows(globalRows.begin() + dpIndex * share,
                              globalRows.begin() + (dpIndex + 1) * share);
    if (Status s = builder->fill(rows, idsBuffer >= 0 ? exec.hostView(idsBuffer) : scratchIds,
                                 labelsBuffer >= 0 ? exec.hostView(labelsBuffer) : scratchLabels);
        !s)
      return runtimeError(o.dataPath + ": " + s.message());
    for (int b : {idsBuffer, labelsBuffer})
      if (b >= 0)
        if (Status s = exec.push(b); !s)
          return runtimeError(s.message());
    int64_t step = state.step + 1;
    double lr = schedule.at(step);
    // A batch that keeps no label has the loss 0 / 0: every rank sees the same global
    // rows, so all decide here alike, before anything runs.
    bool emptyBatch = builder->keptLabels(globalRows) == 0;
    if (emptyBatch && !o.skipNonFiniteSteps)
      return runtimeError(
          "step " + std::to_string(step) + ": no row of the batch keeps a token for the loss "
          "(rows " + describeRows(globalRows) + " are empty, one token long or padding "
          "only), so its loss would be 0 / 0; remove such rows from " + o.dataPath +
          " or skip such steps with --skip-non-finite-steps. Stopped before this step "
          "(checkpoints already written are intact)");
    *exec.hostView(stepBuffer).as<int64_t>() = step;
    *exec.hostView(lrBuffer).as<float>() = float(lr);
    for (int b : {stepBuffer, lrBuffer})
      if (Status s = exec.push(b); !s)
        return runtimeError(s.message());
    if (!emptyBatch) {
      if (Status s = exec.step(); !s)
        return runtimeError("step " + std::to_string(step) + ": " + s.message());
      for (int b : {program.loss(), program.grad_norm()})
        if (b >= 0)
          if (Status s = exec.pull(b); !s)
            return runtimeError(s.message());
    }
    state.step = step;
    if (++state.batchInEpoch >= sampler.batchesPerEpoch()) {
      state.batchInEpoch = 0;
      ++state.epoch;
    }

    auto now = std::chrono::steady_clock::now();
    double stepSeconds = std::chrono::duration<double>(now - stepStart).count();
    if (!emptyBatch)
      stepTimes.push_back(stepSeconds);
    // Profiling starts with the second step run: the first warms caches and threads.
    if (!o.profilePath.empty() && stepTimes.size() == 1)
      exec.setProfiling(true);
    double elapsed = std::chrono::duration<double>(now - start).count();
    double eta = elapsed / double(step - firstStep) * double(total - step);
    double tokensPerSecond =
        emptyBatch ? 0.0 : double(batch * seqLen) / std::max(stepSeconds, 1e-9);
    double stepLoss = emptyBatch ? NAN : double(*loss);
    double norm = gradNorm && !emptyBatch ? double(*gradNorm) : NAN;
    // With --skip-non-finite-steps an empty batch did not run, and the update kernels
    // left the state of a step with a non-finite gradient norm untouched.
    bool skipped = o.skipNonFiniteSteps && (emptyBatch || !std::isfinite(norm));
    if (skipped)
      ++skippedSteps;
    if (!quiet) {
      std::printf("step %lld/%lld | loss %.6f | lr %.3e | grad norm %.4f | %.0f tok/s | "
                  "ETA %s%s\n",
                  (long long)step, (long long)total, stepLoss, lr, norm, tokensPerSecond,
                  formatDuration(eta).c_str(),
                  !skipped     ? ""
                  : emptyBatch ? " | skipped: the batch keeps no token"
                               : " | skipped: the gradient norm is not finite");
      std::fflush(stdout);
    }
    if (metrics && leader) {
      nlohmann::json line = {{"step", step},          {"total_steps", total},
                             {"epoch", state.epoch},  {"loss", stepLoss},
                             {"lr", lr},              {"grad_norm", norm},
                             {"tokens_per_second", tokensPerSecond},
                             {"step_seconds", stepSeconds}, {"eta_seconds", eta}};
      if (o.skipNonFiniteSteps)
        line["skipped"] = skipped;
      metrics << line.dump() << "\n";
      metrics.flush();
      metricsGuard.wrote = true;
    }
    // A non-finite loss or norm has already reached the update: stop before this state
    // is saved (every rank sees the same all-reduced values, so all stop here).
    if (!skipped && (!std::isfinite(stepLoss) || (gradNorm && !std::isfinite(norm)))) {
      char what[160];
      std::snprintf(what, sizeof what, "the %s is not finite (loss %g, grad norm %g)",
                    std::isfinite(stepLoss) ? "gradient norm" : "loss", stepLoss, norm);
      return runtimeError("step " + std::to_string(step) + ": " + what +
                          "; stopped without saving this state (checkpoints already written "
                          "are intact). Divergence (lower --lr, clip with --max-grad-norm) or "
                          "non-finite values in a resumed state; --skip-non-finite-steps "
                          "skips such steps instead");
    }
    bool periodic = o.saveEvery > 0 && step % o.saveEvery == 0;
    if (!o.saveDir.empty() && (periodic || step == total))
      if (Status s = save(); !s)
        return runtimeError(s.message());
  }
  if (skippedSteps > 0 && skippedSteps == total - firstStep)
    return runtimeError("every step of the run (" + std::to_string(skippedSteps) +
                        ") was skipped (batches that keep no token or gradient norms that are "
                        "not finite), so the weights are those the run started from");
  if (!o.profilePath.empty())
    if (Status s = reportProfile(o, exec, rank, bound->stage, context.threads, stepTimes,
                                 quiet);
        !s)
      return runtimeError(s.message());
  if (!quiet && predictedTokensPerSecond > 0 && stepTimes.size() > 1) {
    // The median step after the first (which warms caches and thread pools).
    std::vector<double> steady(stepTimes.begin() + 1, stepTimes.end());
    std::nth_element(steady.begin(), steady.begin() + steady.size() / 2, steady.end());
    double measured = double(batch * seqLen) / steady[steady.size() / 2];
    std::printf("measured: %.0f tok/s (median step after the first), predicted %.0f: "
                "measured / predicted = %.2f\n",
                measured, predictedTokensPerSecond, measured / predictedTokensPerSecond);
    std::fflush(stdout);
  }
  if (skippedSteps > 0 && leader)
    std::fprintf(stderr, "aprun: skipped %lld of %lld steps (batches that keep no token or "
                         "gradient norms that are not finite; --skip-non-finite-steps)\n",
                 (long long)skippedSteps, (long long)(total - firstStep));
  groups.clear(); // communicators first, then the store they rendezvoused through
  abandonOnError.finished = true;
  if (store)
    if (Status s = store->close(); !s)
      std::fprintf(stderr, "aprun: warning: rank %d: %s\n", rank, s.message().c_str());
  return {0, ""};
}

} // namespace apc::train
