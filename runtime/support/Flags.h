// A small command-line parser shared by apc and aprun (the runtime cannot use
// llvm::cl). Flags are `--name value` or `--name=value`; `--help`/`-h` prints the
// generated help. Unknown flags, missing values and malformed numbers are errors
// that name the flag, so every tool reports bad flags the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace apc {

class FlagParser {
public:
  // `program` is the command as the user typed it ("apc import"); `summary` is one
  // line, `usage` the synopsis shown under it.
  FlagParser(std::string program, std::string summary, std::string usage);

  void addString(const std::string &name, std::string *out, const std::string &help,
                 const std::string &metavar = "VALUE");
  void addInt(const std::string &name, int64_t *out, const std::string &help,
              const std::string &metavar = "N");
  void addDouble(const std::string &name, double *out, const std::string &help,
                 const std::string &metavar = "X");
  void addBool(const std::string &name, bool *out, const std::string &help);
  // Positional arguments are taken in the order they are added.
  void addPositional(const std::string &name, std::string *out, const std::string &help,
                     bool required = true);
  // Flags that must be given (checked after parsing).
  void require(const std::string &name);
  // The values an int flag accepts, when it fills something narrower or bounded (an
  // int, a count of processes): others are refused naming the flag and the range.
  void limit(const std::string &name, int64_t min, int64_t max);

  enum class Outcome { Ok, Help, Error };
  // Parses argv[first..argc). On Error, `message` says what is wrong.
  Outcome parse(int argc, char **argv, int first, std::string &message);
  // What a command does with `parse`: on --help prints the help to stdout and returns
  // 0, on an error prints the message to stderr and returns 2 (the exit codes); -1
  // when the command should go on.
  int parseCommandLine(int argc, char **argv, int first);
  std::string help() const;
  const std::string &program() const { return program_; }
  // True when the flag appeared on the command line.
  bool given(const std::string &name) const;
  // How a flag is written on the command line: "-o" for one letter, else "--steps".
  static std::string spelling(const std::string &name);

private:
  struct Flag {
    std::string name, help, metavar;
    bool takesValue = true;
    std::function<bool(const std::string &)> set; // false: malformed value
    std::function<std::string(const std::string &)> check; // a message: out of range
    bool given = false, required = false;
  };
  struct Positional {
    std::string name, help;
    std::string *out;
    bool required;
  };
  Flag *find(const std::string &name);

  std::string program_, summary_, usage_;
  std::vector<Flag> flags_;
  std::vector<Positional> positionals_;
};

} // namespace apc
