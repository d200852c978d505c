// Implementation of FlagParser.
#include "runtime/support/Flags.h"

#include <cstdio>

#include <cerrno>
#include <cmath>
#include <cctype>
#include <cstdlib>

namespace apc {

FlagParser::FlagParser(std::string program, std::string summary, std::string usage)
    : program_(std::move(program)), summary_(std::move(summary)), usage_(std::move(usage)) {}

void FlagParser::addString(const std::string &name, std::string *out,
                           const std::string &help, const std::string &metavar) {
  flags_.push_back({name, help, metavar, true, [out](const std::string &v) {
                      *out = v;
                      return true;
                    }});
}

void FlagParser::addInt(const std::string &name, int64_t *out, const std::string &help,
                        const std::string &metavar) {
  flags_.push_back({name, help, metavar, true, [out](const std::string &v) {
                      if (v.empty())
                        return false;
                      char *end = nullptr;
                      errno = 0;
                      long long x = std::strtoll(v.c_str(), &end, 10);
                      if (errno || *end)
                        return false;
                      *out = x;
                      return true;
                    }});
}

void FlagParser::limit(const std::string &name, int64_t min, int64_t max) {
  Flag *flag = find(name);
  if (!flag)
    return;
  flag->check = [name, min, max](const std::string &v) -> std::string {
    errno = 0;
    long long x = std::strtoll(v.c_str(), nullptr, 10);
    if (errno == 0 && x >= min && x <= max)
      return "";
    return "flag '" + spelling(name) + "' must be between " + std::to_string(min) + " and " +
           std::to_string(max) + ", got " + v;
  };
}

void FlagParser::addDouble(const std::string &name, double *out, const std::string &help,
                           const std::string &metavar) {
  flags_.push_back({name, help, metavar, true, [out](const std::string &v) {
                      if (v.empty())
                        return false;
                      char *end = nullptr;
                      errno = 0;
                      double x = std::strtod(v.c_str(), &end);
                      if (errno || *end || !std::isfinite(x))
                        return false;
                      *out = x;
                      return true;
                    }});
}

void FlagParser::addBool(const std::string &name, bool *out, const std::string &help) {
  flags_.push_back({name, help, "", false, [out](const std::string &) {
                      *out = true;
                      return true;
                    }});
}

void FlagParser::addPositional(const std::string &name, std::string *out,
                               const std::string &help, bool required) {
  positionals_.push_back({name, help, out, required});
}

void FlagParser::require(const std::string &name) {
  if (Flag *f = find(name))
    f->required = true;
}

FlagParser::Flag *FlagParser::find(const std::string &name) {
  for (Flag &f : flags_)
    if (f.name == name)
      return &f;
  return nullptr;
}

bool FlagParser::given(const std::string &name) const {
  for (const Flag &f : flags_)
    if (f.name == name)
      return f.given;
  return false;
}

// How a flag is written on the command line: -o, --steps.
std::string FlagParser::spelling(const std::string &name) {
  return (name.size() == 1 ? "-" : "--") + name;
}

FlagParser::Outcome FlagParser::parse(int argc, char **argv, int first,
                                      std::string &message) {
  size_t nextPositional = 0;
  auto fail = [&](const std::string &what) {
    message = program_ + ": " + what + " (see '" + program_ + " --help')";
    return Outcome::Error;
  };
  bool onlyPositionals = false;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (!onlyPositionals && (arg == "--help" || arg == "-h"))
      return Outcome::Help;
    if (!onlyPositionals && arg == "--") {
      onlyPositionals = true;
      continue;
    }
    if (!onlyPositionals && arg.size() > 1 && arg[0] == '-' &&
        !(arg.size() > 1 && (std::isdigit((unsigned char)arg[1]) || arg[1] == '.'))) {
      const bool doubleDash = arg[1] == '-';
      std::string name = arg.substr(doubleDash ? 2 : 1), value;
      bool inlineValue = false;
      if (size_t eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        inlineValue = true;
      }
      Flag *flag = find(name);
      if (!flag)
        return fail("unknown flag '" + std::string(doubleDash ? "--" : "-") + name + "'");
      // One-letter flags take one dash (-o), as every Unix tool spells them.
      if (name.size() == 1 && doubleDash)
        return fail("unknown flag '--" + name + "' (did you mean '-" + name + "'?)");
      const std::string spelled = spelling(name);
      if (flag->takesValue && !inlineValue) {
        if (i + 1 >= argc)
          return fail("flag '" + spelled + "' needs a value (" + flag->metavar + ")");
        value = argv[++i];
      } else if (!flag->takesValue && inlineValue) {
        return fail("flag '" + spelled + "' takes no value");
      }
      if (!flag->set(value))
        return fail("flag '" + spelled + "' has a malformed value '" + value +
                    "' (expected " + flag->metavar + ")");
      if (flag->check)
        if (std::string why = flag->check(value); !why.empty())
          return fail(why);
      flag->given = true;
      continue;
    }
    if (nextPositional >= positionals_.size())
      return fail("unexpected argument '" + arg + "'");
    *positionals_[nextPositional++].out = arg;
  }
  for (size_t p = nextPositional; p < positionals_.size(); ++p)
    if (positionals_[p].required)
      return fail("missing argument " + positionals_[p].name);
  for (const Flag &f : flags_)
    if (f.required && !f.given)
      return fail("missing required flag '" + spelling(f.name) + "'");
  return Outcome::Ok;
}

std::string FlagParser::help() const {
  std::string out = program_ + ": " + summary_ + "\n\nusage: " + usage_ + "\n";
  if (!positionals_.empty()) {
    out += "\narguments:\n";
    for (const Positional &p : positionals_)
      out += "  " + p.name + std::string(p.name.size() < 22 ? 22 - p.name.size() : 1, ' ') +
             p.help + "\n";
  }
  out += "\nflags:\n";
  for (const Flag &f : flags_) {
    std::string left = (f.name.size() == 1 ? "-" : "--") + f.name + (f.takesValue ? " " + f.metavar : "");
    out += "  " + left + std::string(left.size() < 22 ? 22 - left.size() : 1, ' ') +
           f.help + (f.required ? " (required)" : "") + "\n";
  }
  out += "  --help                " "show this help\n";
  return out;
}

int FlagParser::parseCommandLine(int argc, char **argv, int first) {
  std::string message;
  switch (parse(argc, argv, first, message)) {
  case Outcome::Help:
    std::fputs(help().c_str(), stdout);
    return 0;
  case Outcome::Error:
    std::fprintf(stderr, "%s\n", message.c_str());
    return 2;
  case Outcome::Ok:
    break;
  }
  return -1;
}

} // namespace apc
