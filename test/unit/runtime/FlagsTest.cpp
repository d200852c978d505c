// The flag parser's int limits: values outside what a flag fills are refused naming the
// flag and the range, never cut to a narrower type.
#include "runtime/support/Flags.h"

#include <gtest/gtest.h>

#include <vector>

namespace {

using apc::FlagParser;

FlagParser::Outcome parse(FlagParser &flags, std::vector<std::string> args,
                          std::string &message) {
  std::vector<char *> argv = {const_cast<char *>("tool")};
  for (std::string &a : args)
    argv.push_back(a.data());
  return flags.parse(int(argv.size()), argv.data(), 1, message);
}

TEST(FlagsLimit, RefusesValuesOutsideTheRangeNamingTheFlag) {
  int64_t n = 0;
  FlagParser flags("tool", "test", "tool [--n N]");
  flags.addInt("n", &n, "a count");
  flags.limit("n", 1, 1024);
  std::string message;
  EXPECT_EQ(parse(flags, {"-n", "1024"}, message), FlagParser::Outcome::Ok) << message;
  EXPECT_EQ(n, 1024);
  for (const char *bad : {"0", "1025", "4294967297", "-3"}) {
    FlagParser again("tool", "test", "tool [-n N]");
    again.addInt("n", &n, "a count");
    again.limit("n", 1, 1024);
    EXPECT_EQ(parse(again, {"-n", bad}, message), FlagParser::Outcome::Error) << bad;
    EXPECT_EQ(message, std::string("tool: flag '-n' must be between 1 and 1024, got ") + bad +
                           " (see 'tool --help')");
  }
}

TEST(FlagsLimit, AnUnlimitedIntTakesTheWholeInt64Range) {
  int64_t n = 0;
  FlagParser flags("tool", "test", "tool [-n N]");
  flags.addInt("n", &n, "a count");
  std::string message;
  EXPECT_EQ(parse(flags, {"-n=4294967297"}, message), FlagParser::Outcome::Ok) << message;
  EXPECT_EQ(n, 4294967297);
  EXPECT_EQ(parse(flags, {"-n=99999999999999999999"}, message), FlagParser::Outcome::Error);
  EXPECT_NE(message.find("flag '-n' has a malformed value"), std::string::npos) << message;
}

} // namespace

// One-letter flags are spelled with one dash, in use and in messages: "--o" is refused
// with the right spelling, and a missing -o is named as such (issue 17).
TEST(FlagsSpelling, OneLetterFlagsTakeOneDash) {
  std::string out, message;
  FlagParser flags("tool", "test", "tool -o FILE");
  flags.addString("o", &out, "the output", "FILE");
  flags.require("o");
  EXPECT_EQ(parse(flags, {"--o", "x"}, message), FlagParser::Outcome::Error);
  EXPECT_EQ(message, "tool: unknown flag '--o' (did you mean '-o'?) (see 'tool --help')");
  EXPECT_EQ(parse(flags, {}, message), FlagParser::Outcome::Error);
  EXPECT_EQ(message, "tool: missing required flag '-o' (see 'tool --help')");
  EXPECT_EQ(parse(flags, {"-o"}, message), FlagParser::Outcome::Error);
  EXPECT_EQ(message, "tool: flag '-o' needs a value (FILE) (see 'tool --help')");
  EXPECT_EQ(parse(flags, {"-o", "x"}, message), FlagParser::Outcome::Ok) << message;
  EXPECT_EQ(out, "x");
}
