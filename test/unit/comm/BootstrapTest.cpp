#include "runtime/comm/Bootstrap.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

using namespace apc::comm;
using apc::Result;
using apc::Status;

namespace {

Result<ProcessInfo> detect(const std::map<std::string, std::string> &vars) {
  return detectProcess([&vars](const char *name) -> const char * {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

std::map<std::string, std::string> torchrun() {
  return {{"RANK", "3"},         {"WORLD_SIZE", "8"},         {"LOCAL_RANK", "1"},
          {"LOCAL_WORLD_SIZE", "2"}, {"MASTER_ADDR", "10.0.0.5"}, {"MASTER_PORT", "29411"},
          {"APC_JOB_TOKEN", "secret"}};
}

void expectError(const Result<ProcessInfo> &r, const std::string &needle) {
  ASSERT_FALSE(r.isOk()) << "expected an error containing '" << needle << "'";
  EXPECT_NE(r.message().find(needle), std::string::npos) << r.message();
}

} // namespace

TEST(Bootstrap, NoLauncherIsASingleProcess) {
  auto r = detect({});
  ASSERT_TRUE(r.isOk()) << r.message();
  EXPECT_EQ(r->rank, 0);
  EXPECT_EQ(r->worldSize, 1);
  EXPECT_EQ(r->localRank, 0);
  EXPECT_EQ(r->localWorldSize, 1);
  EXPECT_EQ(r->launcher, "single");
  EXPECT_FALSE(r->multiProcess());
  EXPECT_TRUE(r->jobToken.empty());
}

TEST(Bootstrap, Torchrun) {
  auto r = detect(torchrun());
  ASSERT_TRUE(r.isOk()) << r.message();
  EXPECT_EQ(r->rank, 3);
  EXPECT_EQ(r->worldSize, 8);
  EXPECT_EQ(r->localRank, 1);
  EXPECT_EQ(r->localWorldSize, 2);
  EXPECT_EQ(r->masterAddr, "10.0.0.5");
  EXPECT_EQ(r->masterPort, 29411);
  EXPECT_EQ(r->jobToken, "secret");
  EXPECT_EQ(r->launcher, "torchrun");
  EXPECT_EQ(describe(*r), "rank 3 of 8 (local 1 of 2) via torchrun, store 10.0.0.5:29411");
}

TEST(Bootstrap, AprunIsTorchrunStyle) {
  auto vars = torchrun();
  vars["APC_LAUNCHER"] = "aprun";
  auto r = detect(vars);
  ASSERT_TRUE(r.isOk()) << r.message();
  EXPECT_EQ(r->launcher, "aprun");
}

TEST(Bootstrap, TorchrunLocalVariablesDefaultToOneNode) {
  auto vars = torchrun();
  vars.erase("LOCAL_RANK");
  vars.erase("LOCAL_WORLD_SIZE");
  auto r = detect(vars);
  ASSERT_TRUE(r.isOk()) << r.message();
  EXPECT_EQ(r->localRank, 3);
  EXPECT_EQ(r->localWorldSize, 8);
}

TEST(Bootstrap, TorchrunErrorsNameTheVariable) {
  auto vars = torchrun();
  vars["RANK"] = "8";
  expectError(detect(vars), "RANK=8 is not below WORLD_SIZE=8");

  vars = torchrun();
  vars["RANK"] = "abc";
  expectError(detect(vars), "RANK='abc' is not a non-negative integer");

  vars = torchrun();
  vars["WORLD_SIZE"] = "0";
  expectError(detect(vars), "WORLD_SIZE='0' is not a positive integer");

  vars = torchrun();
  vars["WORLD_SIZE"] = "-2";
  expectError(detect(vars), "WORLD_SIZE='-2'");

  vars = torchrun();
  vars["WORLD_SIZE"] = "99999999999";
  expectError(detect(vars), "WORLD_SIZE");

  vars = torchrun();
  vars.erase("MASTER_ADDR");
  expectError(detect(vars), "MASTER_ADDR is not set");

  vars = torchrun();
  vars.erase("MASTER_PORT");
  expectError(detect(vars), "MASTER_PORT is not set");

  vars = torchrun();
  vars["MASTER_PORT"] = "70000";
  expectError(detect(vars), "MASTER_PORT=70000 is not a TCP port");

  vars = torchrun();
  vars["MASTER_PORT"] = "29x";
  expectError(detect(vars), "MASTER_PORT='29x'");

  vars = torchrun();
  vars["LOCAL_RANK"] = "2";
  expectError(detect(vars), "LOCAL_RANK=2 is not below LOCAL_WORLD_SIZE=2");

  vars = torchrun();
  vars["LOCAL_WORLD_SIZE"] = "9";
  expectError(detect(vars), "LOCAL_WORLD_SIZE=9 is larger than WORLD_SIZE=8");

  vars = torchrun();
  vars.erase("WORLD_SIZE");
  expectError(detect(vars), "RANK is set but WORLD_SIZE is not");

  vars = torchrun();
  vars.erase("RANK");
  expectError(detect(vars), "WORLD_SIZE is set but RANK is not");
}

TEST(Bootstrap, JobTokenRequiredForSeveralProcesses) {
  auto vars = torchrun();
  vars.erase("APC_JOB_TOKEN");
  auto r = detect(vars);
  expectError(r, "APC_JOB_TOKEN is not set");
  expectError(r, "APC_ALLOW_NO_TOKEN=1");

  vars["APC_ALLOW_NO_TOKEN"] = "1";
  r = detect(vars);
  ASSERT_TRUE(r.isOk()) << r.message();
  EXPECT_TRUE(r->jobToken.empty());

  // One process needs no token and no master.
  auto single = detect({{"RANK", "0"}, {"WORLD_SIZE", "1"}});
  ASSERT_TRUE(single.isOk()) << single.message();
  EXPECT_EQ(single->masterPort, kDefaultMasterPort);
}

// Without APC_JOB_TOKEN the launcher's own job id serves (issue 17, item 2): torchrun
// gives every rank TORCHELASTIC_RUN_ID, Slurm SLURM_JOB_ID; the source is reported.
TEST(Bootstrap, TheLaunchersJobIdServesAsToken) {
  auto vars = torchrun();
  vars.erase("APC_JOB_TOKEN");
  vars["TORCHELASTIC_RUN_ID"] = "run-7";
  auto r = detect(vars);
  ASSERT_TRUE(r.isOk()) << r.message();
  EXPECT_EQ(r->jobToken, "TORCHELASTIC_RUN_ID=run-7");
  EXPECT_EQ(r->jobTokenSource, "TORCHELASTIC_RUN_ID");
  vars["APC_JOB_TOKEN"] = "secret";
  r = detect(vars);
  ASSERT_TRUE(r.isOk()) << r.message();
  EXPECT_EQ(r->jobToken, "secret");
  EXPECT_EQ(r->jobTokenSource, "APC_JOB_TOKEN");
  auto slurm = detect({{"SLURM_PROCID", "1"},
                       {"SLURM_NTASKS", "2"},
                       {"SLURM_LOCALID", "1"},
                       {"SLURM_NODEID", "0"},
                       {"SLURM_TASKS_PER_NODE", "2"},
                       {"SLURM_JOB_NODELIST", "gpu1"},
                       {"SLURM_JOB_ID", "4711"}});
  ASSERT_TRUE(slurm.isOk()) << slurm.message();
  EXPECT_EQ(slurm->jobToken, "SLURM_JOB_ID=4711");
  EXPECT_EQ(slurm->jobTokenSource, "SLURM_JOB_ID");
}

TEST(Bootstrap, Slurm) {
  auto r = detect({{"SLURM_PROCID", "5"},
                   {"SLURM_NTASKS", "8"},
                   {"SLURM_LOCALID", "1"},
                   {"SLURM_NODEID", "2"},
                   {"SLURM_TASKS_PER_NODE", "2(x4)"},
                   {"SLURM_JOB_NODELIST", "gpu[07-10,12],cpu1"},
                   {"APC_JOB_TOKEN", "t"}});
  ASSERT_TRUE(r.isOk()) << r.message();
  EXPECT_EQ(r->launcher, "slurm");
  EXPECT_EQ(r->rank, 5);
  EXPECT_EQ(r->worldSize, 8);
  EXPECT_EQ(r->localRank, 1);
  EXPECT_EQ(r->localWorldSize, 2);
  EXPECT_EQ(r->masterAddr, "gpu07");
  EXPECT_EQ(r->masterPort, 29500);
}

TEST(Bootstrap, SlurmUnevenNodesAndOverrides) {
  std::map<std::string, std::string> vars = {{"SLURM_PROCID", "6"},
                                             {"SLURM_NTASKS", "7"},
                                             {"SLURM_LOCALID", "0"},
                                             {"SLURM_NODEID", "3"},
                                             {"SLURM_TASKS_PER_NODE", "2(x3),1"},
                                             {"SLURM_NODELIST", "n1"},
                                             {"MASTER_PORT", "31000"},
                                             {"APC_JOB_TOKEN", "t"}};
  auto r = detect(vars);
  ASSERT_TRUE(r.isOk()) << r.message();
  EXPECT_EQ(r->localWorldSize, 1);
  EXPECT_EQ(r->masterAddr, "n1");
  EXPECT_EQ(r->masterPort, 31000);

  vars["SLURM_NTASKS_PER_NODE"] = "4";
  vars["SLURM_LOCALID"] = "3";
  vars["MASTER_ADDR"] = "head";
  r = detect(vars);
  ASSERT_TRUE(r.isOk()) << r.message();
  EXPECT_EQ(r->localWorldSize, 4);
  EXPECT_EQ(r->localRank, 3);
  EXPECT_EQ(r->masterAddr, "head");
}

TEST(Bootstrap, SlurmErrors) {
  std::map<std::string, std::string> base = {{"SLURM_PROCID", "1"},
                                             {"SLURM_NTASKS", "2"},
                                             {"SLURM_LOCALID", "1"},
                                             {"SLURM_TASKS_PER_NODE", "2"},
                                             {"SLURM_JOB_NODELIST", "node[01-02]"},
                                             {"APC_JOB_TOKEN", "t"}};
  ASSERT_TRUE(detect(base).isOk()) << detect(base).message();

  auto vars = base;
  vars.erase("SLURM_JOB_NODELIST");
  expectError(detect(vars), "SLURM_JOB_NODELIST");

  vars = base;
  vars["SLURM_JOB_NODELIST"] = "node[01-02";
  expectError(detect(vars), "SLURM_JOB_NODELIST: unbalanced '['");

  vars = base;
  vars["SLURM_PROCID"] = "2";
  expectError(detect(vars), "SLURM_PROCID=2 is not below SLURM_NTASKS=2");

  vars = base;
  vars["SLURM_LOCALID"] = "x";
  expectError(detect(vars), "SLURM_LOCALID='x'");

  vars = base;
  vars["SLURM_TASKS_PER_NODE"] = "2(3)";
  expectError(detect(vars), "SLURM_TASKS_PER_NODE");

  vars = base;
  vars.erase("SLURM_NTASKS");
  expectError(detect(vars), "SLURM_NTASKS is not");

  vars = base;
  vars.erase("SLURM_TASKS_PER_NODE");
  expectError(detect(vars), "SLURM_TASKS_PER_NODE is set");
}

TEST(Bootstrap, OpenMpi) {
  std::map<std::string, std::string> vars = {{"OMPI_COMM_WORLD_RANK", "2"},
                                             {"OMPI_COMM_WORLD_SIZE", "4"},
                                             {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                                             {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                                             {"MASTER_ADDR", "host0"},
                                             {"MASTER_PORT", "29600"},
                                             {"APC_JOB_TOKEN", "t"}};
  auto r = detect(vars);
  ASSERT_TRUE(r.isOk()) << r.message();
  EXPECT_EQ(r->launcher, "openmpi");
  EXPECT_EQ(r->rank, 2);
  EXPECT_EQ(r->worldSize, 4);
  EXPECT_EQ(r->localRank, 0);
  EXPECT_EQ(r->localWorldSize, 2);
  EXPECT_EQ(r->masterAddr, "host0");
  EXPECT_EQ(r->masterPort, 29600);

  auto bad = vars;
  bad.erase("MASTER_ADDR");
  expectError(detect(bad), "MASTER_ADDR is not set");
  bad = vars;
  bad["OMPI_COMM_WORLD_RANK"] = "4";
  expectError(detect(bad), "OMPI_COMM_WORLD_RANK=4 is not below OMPI_COMM_WORLD_SIZE=4");
  bad = vars;
  bad["OMPI_COMM_WORLD_LOCAL_SIZE"] = "two";
  expectError(detect(bad), "OMPI_COMM_WORLD_LOCAL_SIZE='two'");
}

TEST(Bootstrap, Precedence) {
  // torchrun inside an srun step, mpirun inside an allocation.
  auto vars = torchrun();
  vars["SLURM_PROCID"] = "0";
  vars["SLURM_NTASKS"] = "1";
  vars["OMPI_COMM_WORLD_RANK"] = "0";
  vars["OMPI_COMM_WORLD_SIZE"] = "1";
  auto r = detect(vars);
  ASSERT_TRUE(r.isOk()) << r.message();
  EXPECT_EQ(r->launcher, "torchrun");

  r = detect({{"OMPI_COMM_WORLD_RANK", "1"},
              {"OMPI_COMM_WORLD_SIZE", "2"},
              {"MASTER_ADDR", "h"},
              {"MASTER_PORT", "1234"},
              {"SLURM_PROCID", "0"},
              {"SLURM_NTASKS", "1"},
              {"APC_JOB_TOKEN", "t"}});
  ASSERT_TRUE(r.isOk()) << r.message();
  EXPECT_EQ(r->launcher, "openmpi");
  EXPECT_EQ(r->rank, 1);
}

TEST(Bootstrap, FirstSlurmHost) {
  struct Case {
    const char *list, *host;
  } cases[] = {{"node[01-04,07]", "node01"}, {"a,b", "a"},
               {"gpu[3]", "gpu3"},           {"r[1-2]-n[08-09]", "r1-n08"},
               {"node007", "node007"},       {"x[10,2-3],y[1-2]", "x10"}};
  for (const auto &c : cases) {
    auto h = firstSlurmHost(c.list);
    ASSERT_TRUE(h.isOk()) << c.list << ": " << h.message();
    EXPECT_EQ(*h, c.host) << c.list;
  }
  for (const char *bad : {"node[1", "node]1", "", "n[]", "n[a-b]", ",a"})
    EXPECT_FALSE(firstSlurmHost(bad).isOk()) << "'" << bad << "'";
}

TEST(Bootstrap, SlurmTasksOnNode) {
  EXPECT_EQ(*slurmTasksOnNode("4", 0), 4);
  EXPECT_EQ(*slurmTasksOnNode("2(x3),1", 0), 2);
  EXPECT_EQ(*slurmTasksOnNode("2(x3),1", 2), 2);
  EXPECT_EQ(*slurmTasksOnNode("2(x3),1", 3), 1);
  EXPECT_EQ(*slurmTasksOnNode("1,3(x2)", 2), 3);
  EXPECT_FALSE(slurmTasksOnNode("2(x3),1", 4).isOk());
  for (const char *bad : {"", "x", "2(3)", "2(x)", "2(x2", "2,,1", "0"})
    EXPECT_FALSE(slurmTasksOnNode(bad, 0).isOk()) << "'" << bad << "'";
}

// Counts of any length are refused past INT_MAX without overflowing (found by
// launcher_env_fuzz: twenty digits overflowed the accumulator, UB).
TEST(Bootstrap, SlurmTasksOnNodeRefusesHugeCounts) {
  for (const char *bad : {"2147483648", "99999999999999999999999", "1(x99999999999999999999)",
                          "2(x2147483647),1(x2147483647)"})
    EXPECT_FALSE(slurmTasksOnNode(bad, 0).isOk()) << "'" << bad << "'";
  EXPECT_EQ(*slurmTasksOnNode("2147483647", 0), 2147483647);
}
