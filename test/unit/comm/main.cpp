// apc_comm_tests: gtest, except when started as a rank by the launcher test of
// launchLocalRanks (/proc/self/exe), where APC_TEST_CHILD_MODE is set.
#include <gtest/gtest.h>

#include <cstdlib>

int launcherChildMain();

int main(int argc, char **argv) {
  if (std::getenv("APC_TEST_CHILD_MODE"))
    return launcherChildMain();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
