#include "tools/aprun/Launcher.h"

#include "runtime/comm/Net.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace apc::tools {

namespace {

using Clock = std::chrono::steady_clock;

int gSignalPipe = -1;

void onSignal(int sig) {
  int saved = errno;
  unsigned char c = static_cast<unsigned char>(sig);
  if (gSignalPipe >= 0) {
    ssize_t ignored = ::write(gSignalPipe, &c, 1);
    (void)ignored;
  }
  errno = saved;
}

void writeFully(int fd, const std::string &text) {
  const char *p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n > 0) {
      p += n;
      left -= size_t(n);
    } else if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      if (errno == EAGAIN) {
        pollfd pfd{fd, POLLOUT, 0};
        poll(&pfd, 1, 100);
      }
    } else {
      return; // the reader is gone: drop the output
    }
  }
}

std::string describeEnd(int rank, int status) {
  std::string who = "rank " + std::to_string(rank);
  if (WIFEXITED(status))
    return who + " exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char *name = strsignal(sig);
    return who + " was killed by signal " + std::to_string(sig) + " (" +
           (name ? name : "unknown") + ")";
  }
  return who + " ended with status " + std::to_string(status);
}

int exitCodeOf(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return 1;
}

struct Stream {
  int fd = -1;
  std::string prefix;
  int outFd = 1;
  std::string pending;

  void emit(const char *data, size_t n) {
    std::string text;
    text.reserve(prefix.size() + n + 1);
    text += prefix;
    text.append(data, n);
    if (text.empty() || text.back() != '\n')
      text += '\n';
    writeFully(outFd, text);
  }
  void feed(const char *data, size_t n) {
    pending.append(data, n);
    size_t start = 0;
    for (;;) {
      size_t nl = pending.find('\n', start);
      if (nl == std::string::npos)
        break;
      emit(pending.data() + start, nl - start + 1);
      start = nl + 1;
    }
    pending.erase(0, start);
    if (pending.size() > 65536) { // a very long line: pass it on in pieces
      emit(pending.data(), pending.size());
      pending.clear();
    }
  }
  void finish() {
    if (!pending.empty())
      emit(pending.data(), pending.size());
    pending.clear();
    if (fd >= 0)
      ::close(fd);
    fd = -1;
  }
};

struct Rank {
  pid_t pid = -1;
  bool running = false;
  int status = 0;
  Stream out, err;
};

bool isOverridden(const char *entry, const std::vector<std::string> &names) {
  for (const auto &name : names)
    if (std::strncmp(entry, name.c_str(), name.size()) == 0 && entry[name.size()] == '=')
      return true;
  return false;
}

} // namespace

int launch(const LaunchOptions &o) {
  auto say = [&](const std::string &line) { writeFully(o.stderrFd, "aprun: " + line + "\n"); };
  if (o.nproc < 1) {
    say("--nproc must be at least 1");
    return 1;
  }
  if (o.args.empty()) {
    say("no command line to run");
    return 1;
  }
  auto port = comm::findFreeLoopbackPort();
  if (!port) {
    say("cannot find a free port on 127.0.0.1: " + port.message());
    return 1;
  }
  auto token = comm::randomHex(16);
  if (!token) {
    say("cannot make a job token: " + token.message());
    return 1;
  }

  // The environment of every rank: ours minus the variables we set.
  std::vector<std::pair<std::string, std::string>> fixed = {
      {"WORLD_SIZE", std::to_string(o.nproc)},
      {"LOCAL_WORLD_SIZE", std::to_string(o.nproc)},
      {"MASTER_ADDR", "127.0.0.1"},
      {"MASTER_PORT", std::to_string(*port)},
      {"APC_JOB_TOKEN", *token},
      {"APC_LAUNCHER", "aprun"},
  };
  for (const auto &kv : o.extraEnv)
    fixed.push_back(kv);
  std::vector<std::string> names = {"RANK", "LOCAL_RANK"};
  for (const auto &kv : fixed)
    names.push_back(kv.first);
  std::vector<std::string> baseEnv;
  for (char **e = environ; e && *e; ++e)
    if (!isOverridden(*e, names))
      baseEnv.push_back(*e);
  for (const auto &kv : fixed)
    baseEnv.push_back(kv.first + "=" + kv.second);

  std::vector<char *> argv;
  for (const auto &a : o.args)
    argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);

  int devNull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

  // Signals to the launcher go to the ranks.
  int sigPipe[2] = {-1, -1};
  if (pipe2(sigPipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    say(std::string("pipe: ") + std::strerror(errno));
    if (devNull >= 0)
      ::close(devNull);
    return 1;
  }
  gSignalPipe = sigPipe[1];
  const int forwarded[] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction oldActions[3];
  for (int i = 0; i < 3; ++i) {
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(forwarded[i], &sa, &oldActions[i]);
  }

  std::vector<Rank> ranks(size_t(o.nproc));
  const pid_t parent = getpid();
  int result = 0;
  bool stopping = false;
  Clock::time_point killAt{};
  bool killed = false;
  auto stopAll = [&](int sig) {
    for (auto &r : ranks)
      if (r.running)
        kill(r.pid, sig);
    if (!stopping) {
      stopping = true;
      killAt = Clock::now() + o.gracePeriod;
    }
  };

  for (int k = 0; k < o.nproc && result == 0; ++k) {
    int outPipe[2], errPipe[2];
    if (pipe2(outPipe, O_CLOEXEC) != 0 || pipe2(errPipe, O_CLOEXEC) != 0) {
      say(std::string("pipe: ") + std::strerror(errno));
      result = 1;
      break;
    }
    std::vector<std::string> env = baseEnv;
    env.push_back("RANK=" + std::to_string(k));
    env.push_back("LOCAL_RANK=" + std::to_string(k));
    std::vector<char *> envp;
    for (auto &e : env)
      envp.push_back(const_cast<char *>(e.c_str()));
    envp.push_back(nullptr);

    pid_t pid = fork();
    if (pid == 0) {
      // The child: only async-signal-safe calls until exec.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent)
        _exit(1);
      for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) {
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        sigaction(sig, &dfl, nullptr);
      }
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      dup2(outPipe[1], 1);
      dup2(errPipe[1], 2);
      if (k > 0 && devNull >= 0)
        dup2(devNull, 0);
      execve(o.executable.c_str(), argv.data(), envp.data());
      const char msg[] = "aprun: cannot start the rank: exec failed\n";
      ssize_t ignored = ::write(2, msg, sizeof(msg) - 1);
      (void)ignored;
      _exit(127);
    }
    ::close(outPipe[1]);
    ::close(errPipe[1]);
    if (pid < 0) {
      say(std::string("fork: ") + std::strerror(errno));
      ::close(outPipe[0]);
      ::close(errPipe[0]);
      result = 1;
      break;
    }
    Rank &r = ranks[size_t(k)];
    r.pid = pid;
    r.running = true;
    r.out.fd = outPipe[0];
    r.out.prefix = k == 0 ? "" : "[rank " + std::to_string(k) + "] ";
    r.out.outFd = o.stdoutFd;
    r.err.fd = errPipe[0];
    r.err.prefix = "[rank " + std::to_string(k) + "] ";
    r.err.outFd = o.stderrFd;
    for (int fd : {outPipe[0], errPipe[0]})
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  if (devNull >= 0)
    ::close(devNull);
  if (result != 0)
    stopAll(SIGTERM);

  const auto start = Clock::now();
  const bool limited = o.timeout.count() > 0;
  Clock::time_point allEndedAt{};
  bool allEnded = false;
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<Stream *> streams;
    fds.push_back({sigPipe[0], POLLIN, 0});
    for (auto &r : ranks)
      for (Stream *s : {&r.out, &r.err})
        if (s->fd >= 0) {
          fds.push_back({s->fd, POLLIN, 0});
          streams.push_back(s);
        }
    if (allEnded && (streams.empty() || Clock::now() - allEndedAt > std::chrono::seconds(2)))
      break; // every rank is gone; stop waiting for output held by their children
    poll(fds.data(), fds.size(), 50);

    for (size_t i = 0; i < streams.size(); ++i) {
      if (!(fds[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      char buf[65536];
      for (int rounds = 0; rounds < 16; ++rounds) {
        ssize_t n = ::read(streams[i]->fd, buf, sizeof(buf));
        if (n > 0) {
          streams[i]->feed(buf, size_t(n));
          continue;
        }
        if (n < 0 && errno == EINTR)
          continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
          streams[i]->finish();
        break;
      }
    }

    unsigned char sig = 0;
    while (::read(sigPipe[0], &sig, 1) == 1) {
      const char *name = strsignal(sig);
      say(std::string("received ") + (name ? name : "a signal") + "; stopping the ranks");
      if (result == 0)
        result = 128 + sig;
      stopAll(sig);
    }

    for (size_t k = 0; k < ranks.size(); ++k) {
      Rank &r = ranks[k];
      if (!r.running)
        continue;
      int status = 0;
      pid_t got = waitpid(r.pid, &status, WNOHANG);
      if (got != r.pid)
        continue;
      r.running = false;
      r.status = status;
      bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
      if (failed && result == 0) {
        result = exitCodeOf(status);
        bool others = false;
        for (auto &o2 : ranks)
          others |= o2.running;
        say(describeEnd(int(k), status) + (others ? "; stopping the other ranks" : ""));
        stopAll(SIGTERM);
      }
    }

    if (limited && !stopping && Clock::now() - start > o.timeout) {
      say("the job ran past its time limit of " + std::to_string(o.timeout.count()) +
          " s; stopping the ranks");
      result = 124;
      stopAll(SIGTERM);
    }
    if (stopping && !killed && Clock::now() >= killAt) {
      bool any = false;
      for (auto &r : ranks)
        if (r.running) {
          kill(r.pid, SIGKILL);
          any = true;
        }
      if (any)
        say("ranks still running " + std::to_string(o.gracePeriod.count()) +
            " ms after SIGTERM get SIGKILL");
      killed = true;
    }
    if (!allEnded) {
      bool any = false;
      for (auto &r : ranks)
        any |= r.running;
      if (!any) {
        allEnded = true;
        allEndedAt = Clock::now();
      }
    }
  }
  for (auto &r : ranks) {
    r.out.finish();
    r.err.finish();
  }
  for (int i = 0; i < 3; ++i)
    sigaction(forwarded[i], &oldActions[i], nullptr);
  gSignalPipe = -1;
  ::close(sigPipe[0]);
  ::close(sigPipe[1]);
  return result;
}

std::vector<char *> withoutFlag(int argc, char **argv, const std::string &name) {
  const std::string flag = "--" + name, withValue = flag + "=";
  std::vector<char *> out;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (i > 0 && arg == flag) {
      ++i; // and its value
      continue;
    }
    if (i > 0 && arg.compare(0, withValue.size(), withValue) == 0)
      continue;
    out.push_back(argv[i]);
  }
  return out;
}

int launchLocalRanks(int nproc, int argc, char **argv, std::chrono::seconds timeout) {
  LaunchOptions o;
  o.nproc = nproc;
  o.timeout = timeout;
  for (int i = 0; i < argc; ++i)
    o.args.push_back(argv[i]);
  return launch(o);
}

} // namespace apc::tools
