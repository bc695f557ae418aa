"""Starting, measuring and stopping the processes a benchmark runs (all on loopback)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INSPECTOR_READY = re.compile(r"gRPC Dispatcher on \S+:(\d+), dashboard at (http://\S+)")
BASELINE_READY = re.compile(r"listening on (\d+)")


class Server:
    """A server process started from the project root; `grpc_target` and `http_url` once ready."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.grpc_target = ""
        self.http_url = ""
        deadline = time.monotonic() + 30
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"{name} exited before it was ready")
            if match := INSPECTOR_READY.search(line):
                self.grpc_target, self.http_url = f"127.0.0.1:{match.group(1)}", match.group(2)
                break
            if match := BASELINE_READY.search(line):
                self.grpc_target = f"127.0.0.1:{match.group(1)}"
                break
        else:
            raise RuntimeError(f"{name} was not ready within 30 s")
        # Keep reading its output so a chatty server never blocks on a full pipe.
        self._reader = threading.Thread(target=self.process.stdout.read, daemon=True)
        self._reader.start()

    @classmethod
    def inspector(cls, *extra: str, capture_log: str | None = "off") -> Server:
        """The inspector as users run it; `capture_log=None` keeps the console log at its default."""
        log = [] if capture_log is None else ["--capture-log", capture_log]
        argv = ["main.py", "--grpc-address", "127.0.0.1:0", "--http-port", "0", *log, *extra]
        return cls("inspector", argv)

    @classmethod
    def baseline(cls, kind: str) -> Server:
        return cls(f"baseline-{kind}", ["-m", "benchmarks.baselines", kind])

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def pin(self, cpu: int) -> None:
        """Run every thread of the server on one CPU (threads it starts later inherit it)."""
        pin_process(self.process.pid, cpu)

    def rss_mib(self) -> float:
        return _status_kib(self.process.pid, "VmRSS") / 1024

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)  # the output ends with the process
        if self.process.stdout is not None and not self._reader.is_alive():
            self.process.stdout.close()


def pin_process(pid: int, cpu: int) -> None:
    """Run every thread of a process on one CPU (threads it starts later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            os.sched_setaffinity(int(task.name), {cpu})


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def run_json(argv: list[str], timeout: float = 600) -> dict[str, Any]:
    """Run a helper process to completion and parse the JSON it prints last."""
    done = subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:2]} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def loadgen(target: str, payload_bytes: int, concurrency: int, seconds: float, **extra: float) -> dict[str, Any]:
    argv = [
        "-m",
        "benchmarks.loadgen",
        target,
        "--payload-bytes",
        str(payload_bytes),
        "--concurrency",
        str(concurrency),
        "--seconds",
        str(seconds),
    ]
    for key, value in extra.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return run_json(argv)


class SseClients:
    """N SSE consumer processes connected to an inspector."""

    def __init__(self, url: str, count: int, count_only: bool = False) -> None:
        flags = ["--count-only"] if count_only else []
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.sse_client", url, *flags],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]
        for process in self.processes:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "connected":
                raise RuntimeError("an SSE client could not connect")

    def finish(self, last_id: int) -> list[dict[str, Any]]:
        results = []
        for process in self.processes:
            out, _ = process.communicate(f"{last_id}\n", timeout=60)
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    mem_kib = _status_kib_meminfo()
    import grpc

    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": sys.version.split()[0],
        "grpcio": grpc.__version__,
    }


def _status_kib_meminfo() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0
