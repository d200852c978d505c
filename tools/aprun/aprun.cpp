// aprun: runs an APC plan (training) on this machine. No MLIR in here.
#include "runtime/data/TextDataset.h"
#include "runtime/plan/DeviceProgram.h"
#include "runtime/exec/DevicesHere.h"
#include "runtime/plan/PlanLoader.h"
#include "runtime/schema/plan_generated.h"
#include "runtime/support/Flags.h"
#include "runtime/train/Trainer.h"
#include "tools/aprun/Dump.h"
#include "tools/aprun/Launcher.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <fstream>
#include <cstdlib>
#include <thread>

using namespace apc;

// Whether a launcher (torchrun, aprun --nproc, Open MPI, Slurm) started this process.
bool launchedByALauncher() {
  for (const char *v : {"RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID"})
    if (std::getenv(v))
      return true;
  return false;
}

// Whether `devices` ranks of `plan` fit on this machine: at most aprun's local rank bound,
// and the plan's predicted bytes per device times the ranks within the memory available
// now (/proc/meminfo MemAvailable; unknown: assumed to fit).
apc::Status fitsHere(const apc::plan::Plan &plan, const std::string &path, int64_t devices) {
  auto launchElsewhere = " launch it across machines with torchrun, srun or mpirun "
                         "(docs/tools/aprun.md, \"Several devices\")";
  if (devices > apc::tools::kMaxLocalRanks)
    return apc::Status::error(path + ": the plan is for " + std::to_string(devices) +
                              " devices, more than the " +
                              std::to_string(apc::tools::kMaxLocalRanks) +
                              " ranks aprun starts on one machine;" + launchElsewhere);
  double available = 0;
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);)
    if (line.rfind("MemAvailable:", 0) == 0)
      available = std::strtod(line.c_str() + 13, nullptr) * 1024;
  const apc::plan::Prediction *p = plan.predicted();
  double needed = p ? double(p->bytes_per_device()) * double(devices) : 0;
  if (available > 0 && needed > available) {
    char text[200];
    std::snprintf(text, sizeof text,
                  ": its %lld ranks need %.1f GiB (%.1f GiB each, predicted), this machine "
                  "has %.1f GiB available;",
                  (long long)devices, needed / 1073741824.0, needed / double(devices) / 1073741824.0,
                  available / 1073741824.0);
    return apc::Status::error(path + text + launchElsewhere);
  }
  return apc::Status::ok();
}

int main(int argc, char **argv) {
  train::TrainOptions o;
  std::string dumpPath, schedule = "constant";
  int64_t seed = 42, padId = -1, threads = 0;
  double lr = 1e-4, minLr = 0.0;
  int64_t warmup = 0;
  double weightDecay = 0, beta1 = 0, beta2 = 0, eps = 0, maxGradNorm = 0;
  bool quiet = false, noShuffle = false, skipNonFinite = false;
  int64_t nproc = 0, commTimeout = 300;
  FlagParser flags(
      "aprun", "train with an APC plan on this machine",
      "aprun plan.fb --data FILE.arrow [--weights DIR|FILE] [--steps N | --epochs E] "
      "[--tokenizer tokenizer.json [--template T] [--mask-pad-id-tokens]] "
      "[--lr X --lr-schedule constant|linear|cosine --warmup N --min-lr X] "
      "[--weight-decay X --beta1 X --beta2 X --eps X --max-grad-norm X] "
      "[--skip-non-finite-steps] [--seed N] [--pad-id N] [--no-shuffle] [--column NAME] "
      "[--save DIR --save-every N] [--resume DIR] [--metrics FILE.jsonl] "
      "[--profile FILE.json] [--threads N] [--quiet] [--nproc N] [--comm-timeout SECONDS]"
      "\n       aprun --dump plan.fb");
  flags.addPositional("plan.fb", &o.planPath, "the plan from apc compile", false);
  flags.addString("dump", &dumpPath, "print the plan readably and exit", "plan.fb");
  flags.addString("data", &o.dataPath, "Arrow IPC file (stream or file format) with the "
                                       "tokenized column; with --tokenizer a text dataset: a "
                                       "file, a shard of a set, a glob or a save_to_disk "
                                       "folder", "PATH");
  bool maskPadIdTokens = false;
  flags.addString("tokenizer", &o.tokenizerPath, "tokenize the text columns of --data with "
                                                 "this Hugging Face tokenizer.json",
                  "tokenizer.json");
  flags.addString("template", &o.promptTemplate, "prompt of each example, {column} naming "
                                                 "text columns, \\n a newline (default: "
                                                 "\"[SUMMARIZE] {article} [/SUMMARIZE]\\n"
                                                 "{highlights}\")", "T");
  flags.addBool("mask-pad-id-tokens", &maskPadIdTokens,
                "label -100 wherever the id equals the pad id, real tokens included, as the "
                "tutorial's mask_pads (default: only the padding)");
  flags.addString("column", &o.column, "the token-id column (default input_ids)", "NAME");
  flags.addString("weights", &o.weightsPath, "Hugging Face safetensors: a file, a folder, or "
                                             "model.safetensors.index.json (default: seeded "
                                             "initialisation)", "PATH");
  flags.addInt("steps", &o.steps, "optimizer steps in all (new epochs start as needed)");
  flags.addInt("epochs", &o.epochs, "whole epochs (drop_last)", "E");
  flags.addDouble("lr", &lr, "peak learning rate (default 1e-4)");
  flags.addString("lr-schedule", &schedule, "constant (default), linear or cosine decay",
                  "KIND");
  flags.addInt("warmup", &warmup, "linear warmup steps (default 0)");
  flags.addDouble("min-lr", &minLr, "learning rate at the end of the decay (default 0)");
  flags.addDouble("weight-decay", &weightDecay, "AdamW weight decay (default: the plan's)");
  flags.addDouble("beta1", &beta1, "AdamW beta1 (default: the plan's)");
  flags.addDouble("beta2", &beta2, "AdamW beta2 (default: the plan's)");
  flags.addDouble("eps", &eps, "AdamW epsilon (default: the plan's)");
  flags.addDouble("max-grad-norm", &maxGradNorm,
                  "clip gradients to this global norm (default: the plan's; 0 disables)");
  flags.addBool("skip-non-finite-steps", &skipNonFinite,
                "a step whose gradient norm is inf or NaN leaves the weights and optimizer "
                "state unchanged and the run goes on (default: it stops the job, exit 1)");
  flags.addInt("seed", &seed, "shuffling and initialisation seed (default 42)");
  flags.addBool("no-shuffle", &noShuffle, "read rows in file order (default: shuffled per "
                                          "epoch from --seed)");
  flags.addInt("pad-id", &padId, "token id that pads short rows (default: the tokenizer "
                                 "config's pad_token with --tokenizer, else the plan's, else "
                                 "the tokenizer's eos_token; for a token-id file the plan's, "
                                 "else the id apc data tokenize recorded in it)");
  flags.addString("save", &o.saveDir, "write checkpoints into this folder", "DIR");
  flags.addInt("save-every", &o.saveEvery, "checkpoint every N steps (default: at the end)");
  flags.addString("resume", &o.resumeDir, "continue from a checkpoint (or the latest in DIR)",
                  "DIR");
  flags.addString("metrics", &o.metricsPath, "append one JSON object per step", "FILE.jsonl");
  flags.addString("profile", &o.profilePath,
                  "time every kernel of the steps after the first and write the totals as "
                  "JSON (\"%r\" in FILE: one file per rank; else rank 0's)", "FILE.json");
  flags.addInt("threads", &threads, "CPU threads per rank (default, or 0: the cores divided "
                                    "among this machine's ranks)");
  flags.addBool("quiet", &quiet, "no per-step progress lines");
  flags.addInt("nproc", &nproc, "start N local ranks (like torchrun --nproc-per-node N); "
                                "without it, ranks come from torchrun/Slurm/Open MPI variables");
  flags.addInt("comm-timeout", &commTimeout,
               "seconds a rank may stay silent before the job ends (default 300)", "SECONDS");
  // Values that fill an int, or count processes and threads, are bounded where parsed.
  flags.limit("nproc", 1, tools::kMaxLocalRanks);
  flags.limit("threads", 0, INT32_MAX);
  flags.limit("comm-timeout", 1, 7 * 24 * 3600);
  if (int code = flags.parseCommandLine(argc, argv, 1); code >= 0)
    return code;
  auto usage = [](const std::string &what) {
    std::fprintf(stderr, "aprun: %s\n", what.c_str());
    return 2;
  };

  if (!dumpPath.empty()) {
    auto loaded = plan::LoadedPlan::load(dumpPath);
    if (!loaded)
      return usage(loaded.message());
    tools::dumpPlan(loaded->plan(), stdout);
    return 0;
  }
  if (o.planPath.empty())
    return usage("missing plan.fb (see 'aprun --help')");
  // More threads than this oversubscribe the cores to no use (and tens of thousands make
  // OpenMP fail or crawl).
  const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
  const int64_t maxThreads = std::max<int64_t>(8, 4 * cores);
  if (threads > maxThreads)
    return usage("--threads " + std::to_string(threads) + " is more than " +
                 std::to_string(maxThreads) + " (4 per core of the " + std::to_string(cores) +
                 " here, at least 8)");
  if (flags.given("nproc")) {
    if (std::getenv("RANK") || std::getenv("OMPI_COMM_WORLD_RANK"))
      return usage("--nproc starts ranks itself, but this process already is one (RANK or "
                   "OMPI_COMM_WORLD_RANK is set): drop --nproc under torchrun/mpirun");
    // The plan says how many ranks it needs: checked before any starts.
    auto loaded = plan::LoadedPlan::load(o.planPath);
    if (!loaded)
      return usage(loaded.message());
    if (Status s = exec::checkDevicesHere(loaded->plan(), o.planPath, nproc); !s)
      return usage(s.message());
    int64_t devices = plan::deviceCount(loaded->plan());
    if (devices != nproc)
      return usage(o.planPath + ": the plan is for " + std::to_string(devices) + " device" +
                   (devices == 1 ? "" : "s") + ", but --nproc starts " + std::to_string(nproc) +
                   " (give --nproc " + std::to_string(devices) + ")");
    // The ranks are this program again, without --nproc, told their rank by torchrun's
    // variables; their output comes back prefixed by rank.
    std::vector<char *> rankArgs = tools::withoutFlag(argc, argv, "nproc");
    return tools::launchLocalRanks(int(nproc), int(rankArgs.size()), rankArgs.data(),
                                   std::chrono::seconds(0));
  }
  o.commTimeoutSeconds = int(commTimeout);
  if (o.dataPath.empty())
    return usage("missing --data FILE.arrow");
  if ((o.steps > 0) == (o.epochs > 0))
    return usage("give exactly one of --steps N or --epochs E (positive)");
  if (o.saveEvery < 0 || (o.saveEvery > 0 && o.saveDir.empty()))
    return usage("--save-every needs --save DIR and a positive N");
  if (flags.given("pad-id") && padId < 0)
    return usage("--pad-id must be >= 0");
  if (threads < 0)
    return usage("--threads must be positive");
  if (flags.given("max-grad-norm") && maxGradNorm < 0)
    return usage("--max-grad-norm must be >= 0 (0 turns clipping off)");
  o.schedule.kind = schedule;
  o.schedule.lr = lr;
  o.schedule.minLr = minLr;
  o.schedule.warmup = warmup;
  o.seed = uint64_t(seed);
  o.seedGiven = flags.given("seed");
  if (flags.given("pad-id"))
    o.padId = padId;
  if (flags.given("weight-decay")) o.weightDecay = weightDecay;
  if (flags.given("beta1")) o.beta1 = beta1;
  if (flags.given("beta2")) o.beta2 = beta2;
  if (flags.given("eps")) o.epsilon = eps;
  if (flags.given("max-grad-norm")) o.maxGradNorm = maxGradNorm;
  // Default: the cores shared among this machine's ranks, as torchrun's OMP_NUM_THREADS.
  int localRanks = 1;
  if (const char *n = std::getenv("LOCAL_WORLD_SIZE"))
    localRanks = std::max(1, std::atoi(n));
  o.threads = threads > 0 ? int(threads)
                          : std::max(1, int(std::thread::hardware_concurrency()) / localRanks);
  o.quiet = quiet;
  o.skipNonFiniteSteps = skipNonFinite;
  if (flags.given("template")) {
    if (o.tokenizerPath.empty())
      return usage("--template needs --tokenizer (it builds text examples)");
    o.promptTemplate = data::unescapeTemplate(o.promptTemplate);
    if (o.promptTemplate.empty())
      return usage("--template is empty");
  }
  o.maskPadIdTokens = maskPadIdTokens;
  o.shuffle = !noShuffle;

  // No launcher and no --nproc, but a plan for several devices: start its ranks on this
  // machine, as torchrun --standalone would, when they fit here (the flags checked first,
  // so that a bad command line is one message, not one per rank).
  if (!flags.given("nproc") && !launchedByALauncher()) {
    auto loaded = plan::LoadedPlan::load(o.planPath);
    if (!loaded)
      return usage(loaded.message());
    int64_t devices = plan::deviceCount(loaded->plan());
    if (Status s = exec::checkDevicesHere(loaded->plan(), o.planPath, devices); !s)
      return usage(s.message());
    if (devices > 1) {
      if (Status s = fitsHere(loaded->plan(), o.planPath, devices); !s)
        return usage(s.message());
      std::fprintf(stderr,
                   "aprun: %s is for %lld devices and no launcher started this process: "
                   "starting %lld local ranks (as aprun --nproc %lld)\n",
                   o.planPath.c_str(), (long long)devices, (long long)devices,
                   (long long)devices);
      return tools::launchLocalRanks(int(devices), argc, argv, std::chrono::seconds(0));
    }
  }
  train::TrainOutcome outcome = train::train(o);
  if (outcome.exitCode != 0)
    std::fprintf(stderr, "aprun: %s\n", outcome.message.c_str());
  return outcome.exitCode;
}
