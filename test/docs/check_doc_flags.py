#!/usr/bin/env python3
"""The docs and the tools' --help agree on flags.

For every command of apc and aprun (apc-opt's flags are mlir-opt's and its passes' options
are listed in docs/tools/apc-compile.md), checks that
  1. every flag its --help lists is documented on its page (written there as `--flag`,
     or `-o`), so no flag is known only to --help;
  2. every flag of the page's synopsis (its plain fenced blocks) exists in --help;
  3. every flag on a command line that runs it, anywhere in README.md and docs/ (command
     blocks, and inline `apc compile ...` spans in prose), exists in --help: a
     documented flag that the tool would refuse is caught here, run or not;
  4. the --help usage line names every flag of --help.

Run: python3 test/docs/check_doc_flags.py   (tools from $APC_BIN_DIR, default build/bin)
Prints one PASS/FAIL line per check and ends with "N passed, M failed"; exit 0 iff M == 0.
"""
import glob
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
BIN = os.path.abspath(os.environ.get("APC_BIN_DIR") or os.path.join(REPO, "build", "bin"))

# command (as typed) -> its page
COMMANDS = {
    "apc import": "docs/tools/apc-import.md",
    "apc compile": "docs/tools/apc-compile.md",
    "apc plan": "docs/tools/apc-plan.md",
    "apc explain": "docs/tools/apc-explain.md",
    "apc calibrate": "docs/tools/apc-calibrate.md",
    "apc eval": "docs/tools/apc-eval.md",
    "apc data tokenize": "docs/data.md",
    "apc data sample": "docs/data.md",
    "aprun": "docs/tools/aprun.md",
}
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-o)(?![\w-])")


class Report:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, ok, detail=""):
        print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + detail) if detail else ""))
        if ok:
            self.passed += 1
        else:
            self.failed += 1


def help_of(command):
    words = command.split()
    out = subprocess.run([os.path.join(BIN, words[0])] + words[1:] + ["--help"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=60).stdout.decode()
    flags = set()
    for line in out.split("\n"):
        m = re.match(r"^\s+(--?[a-z][a-z0-9-]*)", line)
        if m:
            flags.add(m.group(1))
    usage = "\n".join(ln for ln in out.split("\n") if ln.startswith("usage:") or ln.startswith("       "))
    return flags - {"--help", "-h"}, usage


def markdown_files():
    return ["README.md"] + sorted(os.path.relpath(p, REPO)
                                  for p in glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True))


def fenced_blocks(text):
    """[(info, body)] of the fenced blocks, in order."""
    blocks, info, body = [], None, []
    for line in text.split("\n"):
        if line.startswith("```"):
            if info is None:
                info, body = line[3:].strip(), []
            else:
                blocks.append((info, "\n".join(body)))
                info = None
        elif info is not None:
            body.append(line)
    return blocks


def synopsis_blocks(text):
    """The page's plain fenced blocks (synopses, output), not the commands to run."""
    return "\n".join(body for info, body in fenced_blocks(text) if info == "")


def command_lines(text):
    """Command lines of sh blocks (continuations joined) and inline code spans."""
    lines = []
    for block in (body for info, body in fenced_blocks(text) if info == "sh"):
        joined = re.sub(r"\\\n", " ", block)
        lines += [ln.split(" # ")[0] for ln in joined.split("\n")]
    lines += re.findall(r"`([^`\n]+)`", text)
    return lines


def invocation(line):
    """(command, rest) when the line runs one of COMMANDS, else None."""
    m = re.search(r"(?:^|[\s/;&|(])(apc|aprun)((?:\s+[a-z]+){0,2})(\s.*|$)", line)
    if not m:
        return None
    words = [m.group(1)] + m.group(2).split()
    for n in range(len(words), 0, -1):
        cmd = " ".join(words[:n])
        if cmd in COMMANDS:
            rest = " ".join(words[n:]) + (m.group(3) or "")
            return cmd, rest
    return None


def main():
    rep = Report()
    texts = {md: open(os.path.join(REPO, md), encoding="utf-8").read() for md in markdown_files()}
    helps = {}
    for cmd, page in COMMANDS.items():
        flags, usage = help_of(cmd)
        helps[cmd] = flags
        rep.check("%s: --help lists flags" % cmd, bool(flags), "%d flags" % len(flags))
        documented = set(FLAG.findall(texts[page]))
        missing = sorted(flags - documented)
        rep.check("%s: every --help flag is documented in %s" % (cmd, page), not missing,
                  "undocumented: %s" % " ".join(missing) if missing else "%d flags" % len(flags))
        in_usage = set(FLAG.findall(usage))
        missing = sorted(flags - in_usage)
        rep.check("%s: the usage line names every flag" % cmd, not missing,
                  "not in the usage line: %s" % " ".join(missing) if missing else "")
    for cmd, page in COMMANDS.items():
        synopsis = [ln for ln in synopsis_blocks(texts[page]).split("\n") if invocation(ln)
                    and invocation(ln)[0] == cmd]
        unknown = sorted({f for ln in synopsis for f in FLAG.findall(invocation(ln)[1])} - helps[cmd])
        rep.check("%s: the synopsis of %s names only its flags" % (cmd, page), bool(synopsis) and not unknown,
                  ("no synopsis line" if not synopsis else "unknown: %s" % " ".join(unknown))
                  if (unknown or not synopsis) else "")
    for md, text in texts.items():
        bad = []
        for line in command_lines(text):
            inv = invocation(line)
            if not inv:
                continue
            for f in FLAG.findall(inv[1]):
                if f not in helps[inv[0]] | {"--help", "-h"}:
                    bad.append("%s %s (in '%s')" % (inv[0], f, line.strip()[:90]))
        rep.check("%s: every flag of a command it shows exists" % md, not bad, "; ".join(bad[:8]))
    print("%d passed, %d failed" % (rep.passed, rep.failed))
    return 0 if rep.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
