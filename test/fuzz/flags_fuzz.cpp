// Fuzzes FlagParser::parse: the input is a command line, one argument per line (a NUL
// byte also ends an argument, as it would in a real argv). The parser has one flag of
// each kind, a required flag, and a required and an optional positional argument, as
// apc's and aprun's commands do.
#include "runtime/support/Flags.h"
#include "test/fuzz/FuzzSupport.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

using namespace apc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<std::string> args{"aprun"};
  std::string current;
  for (size_t i = 0; i < size; ++i) {
    char c = char(data[i]);
    if (c == '\n') {
      args.push_back(current);
      current.clear();
    } else if (c != '\0') {
      current += c;
    } else {
      // A real argv cannot hold a NUL: the argument ends there, up to the newline.
      while (i + 1 < size && data[i + 1] != '\n')
        ++i;
    }
  }
  if (!current.empty())
    args.push_back(current);
  std::vector<char *> argv;
  for (std::string &a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);

  std::string plan, data_, out = "out", extra;
  int64_t steps = -1;
  double lr = 1e-3;
  bool verbose = false;
  FlagParser parser("aprun", "runs a plan", "aprun PLAN [EXTRA] --data FILE [flags]");
  parser.addPositional("PLAN", &plan, "the plan");
  parser.addPositional("EXTRA", &extra, "optional", /*required=*/false);
  parser.addString("data", &data_, "the data", "FILE");
  parser.addString("out", &out, "output folder", "DIR");
  parser.addInt("steps", &steps, "steps to run");
  parser.addDouble("lr", &lr, "learning rate");
  parser.addBool("verbose", &verbose, "say more");
  parser.require("data");
  parser.require("no-such-flag"); // ignored: not a flag

  std::string message;
  FlagParser::Outcome outcome = parser.parse(int(args.size()), argv.data(), 1, message);
  fuzz::report(outcome == FlagParser::Outcome::Ok     ? "ok"
               : outcome == FlagParser::Outcome::Help ? "help"
                                                      : message);
  switch (outcome) {
  case FlagParser::Outcome::Ok:
    APC_FUZZ_CHECK(message.empty(), "Ok with a message: %s", message.c_str());
    APC_FUZZ_CHECK(parser.given("data"), "the required flag was not given");
    APC_FUZZ_CHECK(std::isfinite(lr), "lr is not finite");
    break;
  case FlagParser::Outcome::Error:
    APC_FUZZ_CHECK(message.rfind("aprun: ", 0) == 0 && message.find('\n') == std::string::npos,
                   "message: %s", message.c_str());
    break;
  case FlagParser::Outcome::Help:
    APC_FUZZ_CHECK(!parser.help().empty(), "empty help");
    break;
  }
  return 0;
}
