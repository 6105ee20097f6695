"""A live imgq system for the tests: imgq-broker (a real process, with a
data dir, on ephemeral ports) and one worker group (mpiexec -n 2
imgq-worker), from the build (IMGQ_BIN_DIR, default ../../build/bin)."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the package, straight from the checkout

import imgq  # noqa: E402

BIN = os.environ.get("IMGQ_BIN_DIR") or os.path.join(HERE, "..", "..", "..", "build", "bin")
MPIEXEC = os.environ.get("IMGQ_MPIEXEC", "mpiexec")
SAMPLES = "/usr/share/doc/opencv-doc/examples/data"


def _start(argv, log):
    out = open(log, "wb")
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc, sig=signal.SIGKILL):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


class System:
    def __init__(self, root):
        self.root = root
        self.groups = []
        self.broker = None
        self.clients = self.workers = self.progress = None

    def start_broker(self, *extra):
        """imgq-broker on ephemeral ports the first time, the same ones after."""
        first = self.clients is None
        argv = [os.path.join(BIN, "imgq-broker"),
                "--clients", "tcp://127.0.0.1:*" if first else self.clients,
                "--workers", "tcp://127.0.0.1:*" if first else self.workers,
                "--progress", "tcp://127.0.0.1:*" if first else self.progress,
                "--data-dir", str(self.root / "broker-data"), "--heartbeat-ms", "200", "--metrics", ""] + list(extra)
        log = self.root / ("broker%d.log" % time.monotonic_ns())
        self.broker = _start(argv, log)
        bound = re.compile(r"clients (tcp://[0-9.:]+), workers (tcp://[0-9.:]+), progress (tcp://[0-9.:]+)")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = bound.search(log.read_text(errors="replace"))
            if m:
                self.clients, self.workers, self.progress = m.groups()
                return
            assert self.broker.poll() is None, log.read_text()
            time.sleep(0.02)
        raise AssertionError("the broker did not start: " + log.read_text())

    def start_group(self, name="py", env=None, *extra):
        argv = [MPIEXEC, "-n", "2", os.path.join(BIN, "imgq-worker"), "--broker", self.workers, "--name", name,
                "--heartbeat-ms", "200"] + list(extra)
        environment = dict(os.environ)
        environment.update(env or {})
        out = open(self.root / (name + ".log"), "wb")
        self.groups.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                            env=environment))

    def await_groups(self, n):
        deadline = time.monotonic() + 60
        with self.client(timeout=10) as c:
            while c.ping().groups != n:
                assert time.monotonic() < deadline, "expected %d group(s)" % n
                time.sleep(0.02)

    def client(self, **kwargs):
        return imgq.Client(self.clients, progress=self.progress, **kwargs)

    def reference(self, ops, source, fmt):
        """Whole-image OpenCV's result for ``source`` (imgq-bench-baseline,
        one process, the reference pipeline), encoded as ``fmt``."""
        out = self.root / ("reference-%d" % time.monotonic_ns())
        argv = [os.path.join(BIN, "imgq-bench-baseline"), "--threads", "1", "--format", fmt, "--out", str(out)]
        for op in ops:
            argv += ["--op", op]
        subprocess.run(argv + [str(source)], check=True, capture_output=True, timeout=120)
        return (out / (os.path.splitext(os.path.basename(source))[0] + "." + fmt)).read_bytes()

    def stop(self):
        for g in self.groups:
            _stop(g)
        if self.broker is not None:
            _stop(self.broker)


@pytest.fixture
def system(tmp_path):
    s = System(tmp_path)
    try:
        s.start_broker()
        s.start_group()
        s.await_groups(1)
        yield s
    finally:
        s.stop()


def pnm(width, height, channels, depth16, seed):
    """A PGM/PPM image of varied content, made here (no image library)."""
    maxval = 65535 if depth16 else 255
    size = 2 if depth16 else 1
    data = bytearray()
    for y in range(height):
        for x in range(width):
            for c in range(channels):
                v = ((x * 37 + y * 91 + c * 53 + seed * 17) ^ (x * y)) % (maxval + 1)
                data += v.to_bytes(size, "big")
    magic = b"P5" if channels == 1 else b"P6"
    return magic + b"\n%d %d\n%d\n" % (width, height, maxval) + bytes(data)
