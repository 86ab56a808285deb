"""Helpers for tests that run real rclpy nodes: waiting on conditions (never fixed sleeps) and
starting the project's console scripts as OS processes."""
import subprocess
import sys
import time
from pathlib import Path

from rclpy.executors import SingleThreadedExecutor


def spin_until(node, predicate, timeout_s, what):
    """Spins `node` until predicate() is true; fails with `what` after timeout_s."""
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.remove_node(node)


def console_script(name):
    """Path of a console script installed in the running venv."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: run scripts/bootstrap.sh")
    return str(path)


class Process:
    """A child process whose output is kept for failure messages; always stopped at exit."""

    def __init__(self, argv, env, log_path):
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def output(self):
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s=10):
        """SIGINT (as Ctrl-C would), then kill if it hangs; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(subprocess.signal.SIGINT)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
