#!/usr/bin/env python3
"""Runs the workspace's test binaries in two lanes at once: scripts/test
without arguments (the whole suite, as CI runs it).

`cargo test` runs one test binary after another. Ours are of two kinds:
the statistics crates' (core, sim, govern) keep both cores busy with
simulations, while the service's (server, store, cli) mostly wait on
sockets, child processes and databases. Running one lane of each side by
side fills the cores the waiting lane leaves idle.

The CLI's fault tests time replicas against a 1 s lease; they run last,
alone, so that the lanes' load cannot starve them into false failures.

Each binary runs as cargo would run it: from its package's directory,
with cargo's environment. Its output is printed whole when it ends, so
lanes never interleave lines. The exit code is 1 if any binary (or the
doc tests) failed.

    scripts/test-lanes.py            # after scripts/test's set-up
"""

import json
import os
import subprocess
import sys
import threading
import time

# Packages whose tests mostly compute; the rest mostly wait. The store's
# tests (quick, on SQLite and PostgreSQL) even out the two lanes.
COMPUTE = {"ripcord-core", "ripcord-sim", "ripcord-govern", "ripcord-store"}
# Tests per binary at once: the waiting lane overlaps its waits.
THREADS = {"compute": "2", "wait": "4", "alone": "2"}
# Tests that time replicas against a 1 s lease: a loaded machine starves
# them into false failures, so they run after both lanes, by themselves.
ALONE = {("ripcord-cli", "tests"): "faults::"}

print_lock = threading.Lock()
failed = []


def binaries():
    """The test executables `cargo test --no-run` builds, with their package."""
    cmd = ["cargo", "test", "--workspace", "--no-run", "--message-format=json-render-diagnostics"]
    build = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if build.returncode != 0:
        sys.exit(build.returncode)
    found = []
    for line in build.stdout.splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg.get("profile", {}).get("test"):
            continue
        package = msg["package_id"]
        name = msg["target"]["name"]
        manifest = msg["manifest_path"]
        # package_id: "path+file:///…/crates/ripcord-core#0.1.0" (newer cargo)
        # or "ripcord-core 0.1.0 (path+file://…)".
        crate = os.path.basename(os.path.dirname(manifest))
        found.append((crate, name, msg["executable"], os.path.dirname(manifest), package))
    return found


def run(lane, label, cmd, cwd):
    env = dict(os.environ)
    env.setdefault("RUST_TEST_THREADS", THREADS[lane])
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    took = time.monotonic() - start
    with print_lock:
        print(f"     Running {label} ({lane} lane, {took:.1f} s)", flush=True)
        sys.stdout.write(done.stdout)
        sys.stdout.flush()
        if done.returncode != 0:
            failed.append(label)


def lane(name, jobs):
    for label, cmd, cwd in jobs:
        run(name, label, cmd, cwd)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    lanes = {"compute": [], "wait": []}
    alone = []
    for crate, target, exe, cwd, _ in binaries():
        which = "compute" if crate in COMPUTE else "wait"
        label = f"{crate} {target}"
        prefix = ALONE.get((crate, target))
        if prefix:
            lanes[which].append((label, [exe, "--skip", prefix], cwd))
            alone.append((f"{label} {prefix}", [exe, prefix], cwd))
        else:
            lanes[which].append((label, [exe], cwd))
    # Doc tests go through cargo; they compile little and run nothing heavy.
    lanes["compute"].append(("doc tests", ["cargo", "test", "--workspace", "--doc"], root))
    threads = [threading.Thread(target=lane, args=(n, jobs)) for n, jobs in lanes.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lane("alone", alone)
    if failed:
        print(f"scripts/test: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
