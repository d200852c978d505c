// How apc calibrate times one case: a warm-up run, then runs until `minSeconds` have
// passed and at least three were made; the mean of those.
#pragma once

#include <chrono>

namespace apc::calibrate {

template <typename Fn> double secondsPerRun(Fn &&run, double minSeconds) {
  using Clock = std::chrono::steady_clock;
  run(); // warm-up: first-touch pages, thread pools, caches
  int runs = 0;
  Clock::time_point start = Clock::now();
  double elapsed = 0;
  do {
    run();
    ++runs;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (runs < 3 || elapsed < minSeconds);
  return elapsed / runs;
}

} // namespace apc::calibrate
