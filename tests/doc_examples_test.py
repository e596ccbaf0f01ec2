#!/usr/bin/env python3
"""Runs the shell sessions of a doc page that are marked <!-- doc-test --> and compares what each
command prints with what the page shows, so that the examples cannot drift from the program.

    doc_examples_test.py DOC.md SHMLOG_BINARY_DIR

A marked block is a fenced block of "$ command" lines, each followed by what it prints (stdout
then stderr) and, if it fails, "[exit N]". The blocks run in page order in one scratch directory
with the built `shmlog` first in PATH, sharing the logs they create. Values that differ from run
to run (times, pids, history ids, heartbeat ages) are masked on both sides. A command ending in
"&" runs in the background, and the next line waits until it has attached as a reader of the
log it names (the page
shows its output in prose); background commands get SIGINT when their block ends. Log names are
given a per-run prefix so that the test never touches a user's log of the same name; `shmlog
list` shows only this run's logs to the comparison, and runs of spaces count as one.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

NAMES = ["quotes2", "quotes", "small", "sensor-buf", "nosuch", "old", "broken"]
VOLATILE_KEYS = [
    "creation_time", "creation_time_ms", "writer_pid", "writer_start_time", "writer_start_time_ms",
    "pid", "heartbeat_age_ms", "snapshot_time", "snapshot_time_ms", "snapshot_age_ms",
    "last_lap_time", "owner", "group",
    # A waiting reader spins, yields, then sleeps: which one info sees depends on timing.
    "state",
]


def marked_blocks(text):
    """Yields (line number, [lines]) of each fenced block right after a <!-- doc-test --> line."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if lines[i].strip() == "<!-- doc-test -->":
            if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
                raise SystemExit(f"line {i + 1}: <!-- doc-test --> not followed by a fenced block")
            start = i + 2
            end = start
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            yield start + 1, lines[start:end]
            i = end
        i += 1


def sessions(block):
    """Splits a block into (command, expected lines, expected exit status)."""
    out = []
    for line in block:
        if line.startswith("$ "):
            out.append([line[2:], [], 0])
        elif not out:
            raise SystemExit(f"output before any command: {line!r}")
        elif re.fullmatch(r"\[exit (\d+)\]", line):
            out[-1][2] = int(line[6:-1])
        else:
            out[-1][1].append(line)
    return out


def rename(text, prefix):
    for name in NAMES:
        text = re.sub(r"(?<![\w.-])" + re.escape(name) + r"(?![\w-])", prefix + name, text)
    return text


def mask(text):
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "<time>", text)
    # shmlog list's rows: the writer's pid, and the owner (user:group) ending the row.
    text = re.sub(r"\b\d+ (alive|dead)\b", r"<pid> \1", text)
    text = re.sub(r"(\d{4} +)\S+:\S+$", r"\1<owner>", text, flags=re.M)
    text = re.sub(r"\b(?!0{40})[0-9a-f]{40}\b", "<id>", text)
    for key in VOLATILE_KEYS:
        text = re.sub(r'(^|[,{])("?' + key + r'"?[:=])("[^"]*"|[^,}\n]*)', r"\1\2<v>", text,
                      flags=re.M)
    # Columns are padded to the longest name, which the per-run prefix lengthens.
    return re.sub(r" {2,}", " ", text)


def readers_attached(env, log):
    info = subprocess.run(["shmlog", "info", log, "--json"], env=env, capture_output=True,
                          text=True)
    try:
        return json.loads(info.stdout)["connected_readers"]
    except (ValueError, KeyError):
        return 0


def main():
    doc, bindir = sys.argv[1], sys.argv[2]
    prefix = f"doctest-{os.getpid()}-"
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""), LC_ALL="C")
    with open(doc, encoding="utf-8") as f:
        text = f.read()
    failures = 0
    checked = 0
    made = []
    with tempfile.TemporaryDirectory() as scratch:
        try:
            for line_no, block in marked_blocks(text):
                background = []
                for command, expected, status in sessions(block):
                    checked += 1
                    cmd = rename(command, prefix)
                    made += [prefix + n for n in NAMES if prefix + n in cmd]
                    bare = re.sub(r"\s+#.*$", "", cmd).rstrip()
                    if bare.endswith("&"):
                        log = next(prefix + n for n in NAMES if prefix + n in cmd)
                        before = readers_attached(env, log)
                        background.append(subprocess.Popen(
                            ["bash", "-c", bare[:-1]], cwd=scratch, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True))
                        deadline = time.monotonic() + 30
                        while readers_attached(env, log) <= before:
                            if time.monotonic() > deadline or background[-1].poll() is not None:
                                print(f"{doc}:{line_no}: '{command}' never attached")
                                failures += 1
                                break
                            time.sleep(0.01)  # polling a condition with a deadline
                        continue
                    run = subprocess.run(["bash", "-c", cmd], cwd=scratch, env=env,
                                         capture_output=True, text=True)
                    actual = run.stdout + run.stderr
                    if re.match(r"shmlog list\b", cmd):
                        # Every log on the host: keep the header and the rows of this run's logs.
                        lines = actual.split("\n")
                        actual = "\n".join(lines[:1] + [l for l in lines[1:] if prefix in l])
                        actual += "\n" if len(lines) > 1 else ""
                    want = rename("\n".join(expected) + ("\n" if expected else ""), prefix)
                    if mask(actual) != mask(want) or run.returncode != status:
                        failures += 1
                        print(f"{doc}:{line_no}: $ {command}")
                        print(f"  expected (exit {status}):\n" + want.replace(prefix, ""))
                        print(f"  actual (exit {run.returncode}):\n" + actual.replace(prefix, ""))
                for p in background:
                    try:
                        os.killpg(p.pid, signal.SIGINT)  # bash and the command it runs
                    except ProcessLookupError:
                        pass  # it ended by itself (a tail whose log the block destroyed)
                    p.wait(timeout=30)
        finally:
            for name in set(made):
                try:
                    os.unlink("/dev/shm/" + name)
                except FileNotFoundError:
                    pass
    print(f"{checked} documented commands checked, {failures} differ")
    return 1 if failures or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
