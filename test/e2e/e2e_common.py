"""Helpers shared by the end-to-end check scripts in this folder (check_*.py).

What lives here is plumbing, not test logic: running the apc/aprun binaries and reporting
their stderr when they fail, writing a tiny Llama 3 config.json and Arrow data files,
`apc import` / `apc compile` / `apc eval`, relative-error comparisons, reading metrics and
checkpoints, and the PASS/FAIL bookkeeping that ends with the line "N passed, M failed".
Each script keeps its own cases, tolerances, seeds and messages.

Binaries are looked up in $APC_BIN_DIR (default: build/bin of this checkout).
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

import llama_reference as ref

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_BIN_DIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "build", "bin")

# The four files of an aprun checkpoint-N folder, sorted.
CHECKPOINT_FILES = ["config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"]


class StageFailure(Exception):
    """A subprocess or I/O stage failed: the rest of the case cannot run."""


# ------------------------------------------------------------------------------ reporting


class Report:
    """Counts checks and prints one "PASS name: detail" / "FAIL name: detail" line each."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        """Records and prints one check; returns ok."""
        print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + detail) if detail else ""))
        sys.stdout.flush()
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok

    def info(self, text):
        """An indented line of context that is not a check."""
        print("     " + text)
        sys.stdout.flush()

    def guard(self, name, fn, *args, **kwargs):
        """Runs fn(*args, **kwargs); an exception becomes a FAIL line instead of ending the script.

        StageFailure gives "FAIL name: message"; any other exception (an oracle or I/O bug)
        gives "FAIL name: unexpected error: Type: message"."""
        try:
            return fn(*args, **kwargs)
        except StageFailure as e:
            self.check(name, False, str(e))
        except Exception as e:
            self.check("%s: unexpected error" % name, False, "%s: %s" % (type(e).__name__, e))

    def summary(self, start=None):
        """Prints "     total Xs" (when start is given) and "N passed, M failed"; returns the exit code."""
        if start is not None:
            self.info("total %.1fs" % (time.time() - start))
        print("%d passed, %d failed" % (self.passed, self.failed))
        return 0 if self.failed == 0 else 1


@contextlib.contextmanager
def temp_root(prefix, keep=False):
    """A temporary work directory, removed afterwards unless keep (then its path is printed)."""
    root = tempfile.mkdtemp(prefix=prefix)
    try:
        yield root
    finally:
        if keep:
            print("kept work directory: %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------ processes


def bin_path(tool):
    """Path of an APC binary ("apc", "aprun") in $APC_BIN_DIR."""
    return os.path.join(os.environ.get("APC_BIN_DIR", DEFAULT_BIN_DIR), tool)


def wait_for_binary(path):
    """Waits up to 60 s for `path` to exist (another build may be relinking it right now)."""
    for _ in range(60):
        if os.path.exists(path):
            return
        time.sleep(1)
    raise StageFailure("binary not found at %s (set APC_BIN_DIR)" % path)


def kill_group(p):
    """SIGKILL a still-running Popen started with start_new_session and everything in its
    session (a launcher's ranks); reap it.

    Only while the process is alive (so its pid still names our session): a launcher's ranks
    die with it (PR_SET_PDEATHSIG), hand-launched ranks are Popen objects of their own."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except OSError:
                pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def run_cmd(tool, args, cwd, timeout=300, env=None):
    """Runs bin_path(tool) with args to completion in a session of its own.

    Returns (exit code, stdout, stderr) as text without judging the exit code. On timeout
    the whole session is killed and StageFailure raised; nothing started here outlives it."""
    cmd = [bin_path(tool)] + list(args)
    wait_for_binary(cmd[0])
    try:
        p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                             start_new_session=True)
    except OSError as e:
        raise StageFailure("cannot run %s: %s" % (cmd[0], e))
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(p)
        p.communicate()
        raise StageFailure("timed out after %d s: %s" % (timeout, " ".join(cmd)))
    finally:
        kill_group(p)
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def run_tool(tool, args, cwd, timeout=300, env=None):
    """run_cmd that must succeed: returns (stdout, stderr); a non-zero exit raises
    StageFailure quoting the command line, its whole stderr and the tail of its stdout."""
    rc, out, err = run_cmd(tool, args, cwd, timeout, env)
    if rc != 0:
        raise StageFailure("command failed (exit %d): %s\n--- stderr ---\n%s--- stdout (tail) ---\n%s"
                           % (rc, " ".join([bin_path(tool)] + list(args)), err, out[-2000:]))
    return out, err


# ------------------------------------------------------------------------------ model config


def llama_config(vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
                 num_key_value_heads, max_position_embeddings, **extra):
    """An HF LlamaForCausalLM config dict of the given sizes: RMSNorm eps 1e-5, rope_theta 1e4,
    SiLU, no biases, untied embeddings, float32; `extra` fields (bos/eos ids, rope_scaling,
    overrides) are added at the end."""
    cfg = dict(
        architectures=["LlamaForCausalLM"],
        model_type="llama",
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        max_position_embeddings=max_position_embeddings,
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    cfg.update(extra)
    return cfg


def llama3_rope_scaling(original_max_position_embeddings):
    """rope_scaling of type llama3 with factor 8, low/high frequency factors 1 and 4."""
    return dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                original_max_position_embeddings=original_max_position_embeddings)


def write_config(cfg, path, indent=2):
    """Writes the config dict as JSON to `path`; returns path."""
    with open(path, "w") as f:
        json.dump(cfg, f, indent=indent)
    return path


# ------------------------------------------------------------------------------ apc


def apc_import(config_path, out, cwd, batch, seq, extra=(), timeout=300):
    """apc import llama3 --config CONFIG --batch B --seq-len S [extra] -o OUT; returns out.

    `out` is passed as given (relative paths are relative to cwd)."""
    run_tool("apc", ["import", "llama3", "--config", config_path, "--batch", str(batch), "--seq-len", str(seq)]
             + list(extra) + ["-o", out], cwd, timeout)
    if not os.path.exists(os.path.join(cwd, out)):
        raise StageFailure("apc import did not write %s" % out)
    return out


def import_llama3(cfg, workdir, batch, seq, out="m.mlir", config_name="config.json", extra=(), indent=2):
    """Writes cfg to workdir/config_name and imports it into workdir/out (see apc_import)."""
    cfg_path = write_config(cfg, os.path.join(workdir, config_name), indent)
    return apc_import(cfg_path, out, workdir, batch, seq, extra)


def apc_compile(mlir, out, cwd, cluster="cpu:1", precision="fp32", emit=None, extra=(), timeout=300):
    """apc compile MLIR --cluster C --precision P [--emit=E] -o OUT [extra]; returns (stdout, stderr)."""
    args = ["compile", mlir, "--cluster", cluster, "--precision", precision]
    # The checks compare plans they name; without one, data parallelism over the devices
    # (apc compile's own default is the plan search, checked by check_plan_search.py).
    if "--plan" not in extra and not any(str(e).startswith("--plan=") for e in extra) \
            and cluster.startswith("cpu:"):
        args += ["--plan", "dp=" + cluster.split(":")[1]]
    if emit:
        args.append("--emit=" + emit)
    out_text, err_text = run_tool("apc", args + ["-o", out] + list(extra), cwd, timeout)
    if not os.path.exists(os.path.join(cwd, out)):
        raise StageFailure("apc compile did not write %s" % out)
    return out_text, err_text


def apc_eval(mlir, inputs, workdir, tag):
    """Writes `inputs` ({name: array}) to workdir/in_TAG.safetensors, runs apc eval into
    out_TAG.safetensors and returns its ({name: array}, {name: safetensors dtype}).

    An input that apc eval reports as matching no argument of the function is an error."""
    in_path = os.path.join(workdir, "in_%s.safetensors" % tag)
    out_path = os.path.join(workdir, "out_%s.safetensors" % tag)
    ref.write_safetensors(in_path, inputs)
    _, err = run_tool("apc", ["eval", mlir, "--inputs", in_path, "-o", out_path], workdir)
    warn = [ln for ln in err.splitlines() if "matches no argument" in ln]
    if warn:
        raise StageFailure("apc eval ignored input tensors (argument names differ from the spec):\n"
                           + "\n".join(warn[:10]))
    if not os.path.exists(out_path):
        raise StageFailure("apc eval did not write %s" % out_path)
    return ref.read_safetensors(out_path)


# ------------------------------------------------------------------------------ data


def write_arrow(path, rows, value_type="int32", stream=False, rows_per_batch=None, sliced=True):
    """Writes rows (lists of token ids) as an Arrow IPC file (or stream) with one column
    input_ids: list<value_type>, in record batches of at most rows_per_batch rows (one batch
    if None).

    sliced: the batches are slices of one array, so the list offsets of every batch after
    the first do not start at 0 (as when a table is re-chunked); with sliced=False each batch
    is built on its own and its offsets start at 0."""
    import pyarrow as pa
    list_type = pa.list_(getattr(pa, value_type)())
    table = pa.table({"input_ids": pa.array(rows, type=list_type)})
    if rows_per_batch and not sliced:
        batches = [pa.record_batch([pa.array(rows[i:i + rows_per_batch], type=list_type)], schema=table.schema)
                   for i in range(0, len(rows), rows_per_batch)]
    elif rows_per_batch:
        batches = table.to_batches(max_chunksize=rows_per_batch)
    else:
        batches = table.to_batches()
    new = pa.ipc.new_stream if stream else pa.ipc.new_file
    with pa.OSFile(path, "wb") as sink:
        with new(sink, table.schema) as writer:
            for b in batches:
                writer.write_batch(b)


def build_batches(rows, steps, batch, seq, pad_id):
    """The batches aprun feeds with --no-shuffle --pad-id PAD_ID: batch k of an epoch is rows
    [k*batch, (k+1)*batch), truncated to seq or right-padded with pad_id; labels = ids with
    only the padded positions set to -100; the last partial batch of each epoch is dropped.
    Returns [(ids, labels, epoch, k)] for steps 1..steps."""
    per_epoch = len(rows) // batch
    out = []
    for s in range(steps):
        k = s % per_epoch
        ids = np.full((batch, seq), pad_id, dtype=np.int64)
        labels = np.full((batch, seq), ref.IGNORE_INDEX, dtype=np.int64)
        for b, row in enumerate(rows[k * batch:(k + 1) * batch]):
            n = min(len(row), seq)
            ids[b, :n] = row[:n]
            labels[b, :n] = row[:n]
        out.append((ids, labels, s // per_epoch, k))
    return out


# ------------------------------------------------------------------------------ comparisons


def rel_err(got, want):
    """||got - want|| / ||want|| in float64 (the plain norm of the difference if want is 0)."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    den = np.linalg.norm(want)
    num = np.linalg.norm(got - want)
    return num / den if den > 0 else num


def scalar_rel(got, want):
    """|got - want| / |want| (the absolute difference if want is 0)."""
    return abs(got - want) / abs(want) if want != 0 else abs(got - want)


def ranked_rel_errs(got, want, names):
    """[(rel_err(got[n], want[n]), n) for n in names], worst first."""
    return sorted(((rel_err(got[n], want[n]), n) for n in names), reverse=True)


def max_abs_diff(got, want):
    """(largest |got - want| elementwise, its index as a list of ints); index [] for scalars."""
    diff = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))
    idx = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
    return float(diff[idx]), [int(i) for i in idx]


# ------------------------------------------------------------------------------ aprun outputs


def read_metrics(path):
    """The JSON objects of an aprun --metrics file, one a line ([] if it does not exist)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def checkpoint_folders(d):
    """{step: path} of the checkpoint-N folders directly in d (temporary ones excluded)."""
    out = {}
    for name in os.listdir(d):
        m = re.fullmatch(r"checkpoint-(\d+)", name)
        if m:
            out[int(m.group(1))] = os.path.join(d, name)
    return out


def load_checkpoint(folder):
    """(model, model dtypes, optimizer, optimizer dtypes, trainer_state, config) of a
    checkpoint folder; StageFailure unless it holds exactly CHECKPOINT_FILES (OSError or
    ValueError if a file does not parse)."""
    files = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    if files != CHECKPOINT_FILES:
        raise StageFailure("%s has files %s" % (folder, files))
    model, mdt = ref.read_safetensors(os.path.join(folder, "model.safetensors"))
    opt, odt = ref.read_safetensors(os.path.join(folder, "optimizer.safetensors"))
    with open(os.path.join(folder, "trainer_state.json")) as f:
        st = json.load(f)
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    return model, mdt, opt, odt, st, cfg
