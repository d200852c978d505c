#include "tools/aprun/Launcher.h"

#include "test/unit/comm/ForkRanks.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <unistd.h>

using namespace apc::tools;
using namespace apc::comm::testing;
using namespace std::chrono_literals;

namespace {

struct Captured {
  int code = -1;
  double seconds = 0;
  std::string out, err;
};

std::string slurp(FILE *f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
    s.append(buf, n);
  return s;
}

// Runs the helper program as `nproc` ranks in `mode`.
Captured run(int nproc, const std::string &mode, std::chrono::seconds timeout = 30s,
             std::chrono::milliseconds grace = 1s, const std::string &exe = APC_LAUNCHER_CHILD) {
  FILE *out = std::tmpfile(), *err = std::tmpfile();
  LaunchOptions o;
  o.nproc = nproc;
  o.executable = exe;
  o.args = {"launcher_child"};
  o.timeout = timeout;
  o.gracePeriod = grace;
  o.extraEnv = {{"APC_TEST_CHILD_MODE", mode}};
  o.stdoutFd = fileno(out);
  o.stderrFd = fileno(err);
  Captured c;
  auto start = std::chrono::steady_clock::now();
  c.code = launch(o);
  c.seconds = secondsSince(start);
  c.out = slurp(out);
  c.err = slurp(err);
  std::fclose(out);
  std::fclose(err);
  return c;
}

bool hasLine(const std::string &text, const std::string &line) {
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l))
    if (l == line)
      return true;
  return false;
}

} // namespace

TEST(Launcher, PrefixesEachLineWithTheRank) {
  Captured c = run(3, "print");
  EXPECT_EQ(c.code, 0) << c.err;
  // Rank 0's stdout passes unchanged; everything else is prefixed.
  EXPECT_TRUE(hasLine(c.out, "hello from rank 0 of 3")) << c.out;
  EXPECT_TRUE(hasLine(c.out, "[rank 1] hello from rank 1 of 3")) << c.out;
  EXPECT_TRUE(hasLine(c.out, "[rank 2] hello from rank 2 of 3")) << c.out;
  EXPECT_TRUE(hasLine(c.err, "[rank 0] note from rank 0")) << c.err;
  EXPECT_TRUE(hasLine(c.err, "[rank 2] note from rank 2")) << c.err;
  // torchrun's variables, a 128-bit token in hex.
  EXPECT_TRUE(hasLine(c.out, "env LOCAL_RANK=0 LOCAL_WORLD_SIZE=3 MASTER_ADDR=127.0.0.1 "
                             "port=ok token=32 launcher=aprun"))
      << c.out;
  EXPECT_TRUE(hasLine(c.out, "[rank 1] env LOCAL_RANK=1 LOCAL_WORLD_SIZE=3 "
                             "MASTER_ADDR=127.0.0.1 port=ok token=32 launcher=aprun"))
      << c.out;
  // A last line without a newline is still passed on, whole.
  EXPECT_TRUE(hasLine(c.out, "no newline at the end 0")) << c.out;
  EXPECT_TRUE(hasLine(c.out, "[rank 2] no newline at the end 2")) << c.out;
  EXPECT_EQ(c.err.find("aprun:"), std::string::npos) << c.err;
}

TEST(Launcher, AFailingRankStopsTheJob) {
  Captured c = run(3, "fail1");
  EXPECT_EQ(c.code, 3);
  EXPECT_LT(c.seconds, 5.0);
  EXPECT_TRUE(hasLine(c.err, "[rank 1] rank 1 gives up")) << c.err;
  EXPECT_TRUE(hasLine(c.err, "aprun: rank 1 exited with code 3; stopping the other ranks"))
      << c.err;
}

TEST(Launcher, ARankKilledBySignal) {
  Captured c = run(2, "kill1");
  EXPECT_EQ(c.code, 128 + 9);
  EXPECT_LT(c.seconds, 5.0);
  EXPECT_NE(c.err.find("aprun: rank 1 was killed by signal 9"), std::string::npos) << c.err;
}

TEST(Launcher, RanksIgnoringSigtermGetSigkill) {
  Captured c = run(2, "stubborn", 30s, 300ms);
  EXPECT_EQ(c.code, 5);
  EXPECT_LT(c.seconds, 5.0);
  EXPECT_NE(c.err.find("aprun: rank 1 exited with code 5"), std::string::npos) << c.err;
  EXPECT_NE(c.err.find("get SIGKILL"), std::string::npos) << c.err;
}

TEST(Launcher, JobTimeLimit) {
  Captured c = run(2, "sleep", 1s, 300ms);
  EXPECT_EQ(c.code, 124);
  EXPECT_LT(c.seconds, 5.0);
  EXPECT_NE(c.err.find("ran past its time limit of 1 s"), std::string::npos) << c.err;
}

TEST(Launcher, ExecutableThatCannotStart) {
  Captured c = run(2, "print", 30s, 300ms, "/nonexistent/program");
  EXPECT_EQ(c.code, 127);
  EXPECT_NE(c.err.find("exited with code 127"), std::string::npos) << c.err;
  EXPECT_NE(c.err.find("exec failed"), std::string::npos) << c.err;
}

TEST(Launcher, BadArguments) {
  LaunchOptions o;
  o.nproc = 0;
  o.args = {"x"};
  FILE *err = std::tmpfile();
  o.stderrFd = fileno(err);
  EXPECT_EQ(launch(o), 1);
  EXPECT_NE(slurp(err).find("--nproc must be at least 1"), std::string::npos);
  std::fclose(err);
}

// The whole path: launcher -> detectProcess -> TcpStore -> Gloo.
TEST(Launcher, RanksRendezvousAndAllReduce) {
  Captured c = run(3, "allreduce");
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_TRUE(hasLine(c.out, "sum 6 via aprun")) << c.out << c.err;
}

TEST(Launcher, ADeadRankFailsTheCollectiveAndTheJob) {
  Captured c = run(3, "commfail", 30s, 1s);
  EXPECT_EQ(c.code, 7) << c.err;
  EXPECT_LT(c.seconds, 8.0);
  EXPECT_NE(c.err.find("aprun: rank 1 exited with code 7"), std::string::npos) << c.err;
}

// launchLocalRanks itself: /proc/self/exe is this test binary, whose main() becomes the
// helper when APC_TEST_CHILD_MODE is set.
TEST(Launcher, LaunchLocalRanksRunsThisExecutable) {
  char arg0[] = "apc_comm_tests";
  char *argv[] = {arg0, nullptr};
  setenv("APC_TEST_CHILD_MODE", "allreduce", 1);
  int ok = launchLocalRanks(2, 1, argv, 30s);
  setenv("APC_TEST_CHILD_MODE", "fail1", 1);
  int failed = launchLocalRanks(2, 1, argv, 30s);
  unsetenv("APC_TEST_CHILD_MODE");
  EXPECT_EQ(ok, 0);
  EXPECT_EQ(failed, 3);
}

TEST(Launcher, WithoutFlag) {
  char a0[] = "aprun", a1[] = "plan.fb", a2[] = "--nproc", a3[] = "4", a4[] = "--steps",
       a5[] = "10", a6[] = "--nproc=2", a7[] = "--nprocs", a8[] = "x";
  char *argv[] = {a0, a1, a2, a3, a4, a5, a6, a7, a8};
  auto v = withoutFlag(9, argv, "nproc");
  std::vector<std::string> got(v.begin(), v.end());
  EXPECT_EQ(got, (std::vector<std::string>{"aprun", "plan.fb", "--steps", "10", "--nprocs",
                                           "x"}));
}
