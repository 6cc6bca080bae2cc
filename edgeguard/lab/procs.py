"""Stopping the lab's child processes (daemons, receivers) as systemd would."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; the exit code (-9 when it had to be killed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def run_tool(argv: list[str], timeout: float, **popen: Any) -> str:
    """Run a command-line tool to the end and return its stdout; RuntimeError with its output
    when it fails or takes longer than ``timeout`` (``popen``: cwd, env, user, input, ...)."""
    try:
        done = subprocess.run(argv, check=False, capture_output=True, timeout=timeout, **popen)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{' '.join(argv)} did not finish in {timeout}s") from None
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited with {done.returncode}:\n"
            f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"
        )
    return str(done.stdout.decode(errors="replace"))
