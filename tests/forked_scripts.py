"""Runs many small Python scripts, each in a process of its own, without paying torch's and transformers' import
for every one: a parent process imports them once, then forks a child per script (the child gets its own working
folder, environment and output files, and runs the script as `__main__`).

Why: the README's and the model cards' code blocks are each run as a user would run them, in a fresh interpreter;
importing torch, transformers and this package costs a few seconds, more than most blocks take. A fork starts from
the imported state, which a fresh interpreter would reach by importing the same modules first.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

# The child's side: the loop of the forking parent, run with `python -c`.
SERVER = r"""
import json, os, runpy, sys, traceback
import torch, transformers, transformers.pipelines  # noqa: F401 - what every block imports first
import transformers_fireredasr  # noqa: F401
requests, replies = sys.stdin, sys.__stdout__
for line in requests:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        try:
            out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(out, 1), os.dup2(err, 2)
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            sys.argv = [request["script"]]
            sys.path[0] = request["cwd"]
            code = 0
            try:
                runpy.run_path(request["script"], run_name="__main__")
            except SystemExit as exit:
                code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush(), sys.stderr.flush()
        finally:
            os._exit(locals().get("code", 1))
    _, status = os.waitpid(pid, 0)
    replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
    replies.flush()
"""


class ForkedScripts:
    """`run(script, cwd, env, timeout)` -> `subprocess.CompletedProcess`, as `subprocess.run([python, script])`
    would give it (returncode, stdout, stderr). `env` is the parent's start-up environment too: set the variables
    read at import time (threads, offline switches) the same for every script."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.lock = threading.Lock()
        self.process = self._start()

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.env, text=True
        )

    def run(self, script: Path, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        stdout, stderr = cwd / ".stdout", cwd / ".stderr"
        request = {"script": str(script), "cwd": str(cwd), "env": env, "stdout": str(stdout), "stderr": str(stderr)}
        with self.lock:
            if self.process.poll() is not None:  # killed after a script ran past its timeout: start again
                self.process = self._start()
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            reply = {}
            timer = threading.Timer(timeout, self.process.kill)
            timer.start()
            try:
                line = self.process.stdout.readline()
            finally:
                timer.cancel()
            reply = json.loads(line) if line else {"returncode": -9}
        return subprocess.CompletedProcess(
            [sys.executable, str(script)],
            reply["returncode"],
            stdout.read_text(errors="replace") if stdout.exists() else "",
            stderr.read_text(errors="replace") if stderr.exists() else "",
        )

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


__all__ = ["ForkedScripts"]
