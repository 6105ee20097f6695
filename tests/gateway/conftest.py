"""A live imgq system behind imgq-gateway, with CURVE: the broker's
allow-list holds alice's and bob's keys, the gateway's tokens file maps a
token to each, and one worker group serves. The system comes from the
Python client's tests (clients/python/tests/conftest.py)."""

import http.client
import importlib.util
import json
import os
import re
import subprocess
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "imgq_system", os.path.join(HERE, "..", "..", "clients", "python", "tests", "conftest.py"))
imgq_system = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(imgq_system)
BIN, SAMPLES, System, _start, _stop = (imgq_system.BIN, imgq_system.SAMPLES, imgq_system.System,
                                        imgq_system._start, imgq_system._stop)

TOKENS = {"alice": "alice-token-0123456789abcdef", "bob": "bob-token-0123456789abcdef00"}


class Gateway:
    def __init__(self, root, broker, server_key=None, tokens_file=None):
        log = root / ("gateway%d.log" % time.monotonic_ns())
        access = ["--tokens", str(tokens_file), "--server-key", str(server_key)] if tokens_file else ["--open"]
        self.proc = _start([os.path.join(BIN, "imgq-gateway"), "--broker", broker, "--listen", "127.0.0.1:0"] + access,
                           log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = re.search(r"serving http://[0-9.]+:(\d+)", log.read_text(errors="replace"))
            if m:
                self.port = int(m.group(1))
                return
            assert self.proc.poll() is None, log.read_text()
            time.sleep(0.02)
        raise AssertionError("the gateway did not start: " + log.read_text())

    def request(self, method, path, body=None, who="alice", headers=None):
        """(status, headers, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=90)
        h = dict(headers or {})
        if who is not None:
            h["Authorization"] = "Bearer " + TOKENS[who]
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def json(self, method, path, body=None, who="alice", headers=None):
        status, headers, data = self.request(method, path, body, who, headers)
        return status, headers, (json.loads(data) if data else None)

    def stop(self):
        _stop(self.proc)


@pytest.fixture
def curve_system(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("broker", "alice", "bob", "group"):
        subprocess.run([os.path.join(BIN, "imgq"), "keygen", str(keys / name)], check=True, capture_output=True)
    (keys / "clients.allow").write_text((keys / "alice.pub").read_text() + (keys / "bob.pub").read_text())
    (keys / "workers.allow").write_text((keys / "group.pub").read_text())
    (keys / "tokens").write_text("# token tenant key\n%s alice alice.key\n%s bob bob.key\n" %
                                 (TOKENS["alice"], TOKENS["bob"]))
    s = System(tmp_path)
    s.keys = keys
    gateway = None
    try:
        s.start_broker("--curve-key", str(keys / "broker.key"), "--allow-clients", str(keys / "clients.allow"),
                       "--allow-workers", str(keys / "workers.allow"))
        gateway = Gateway(tmp_path, s.clients, keys / "broker.pub", keys / "tokens")
        s.gateway = gateway
        yield s
    finally:
        if gateway is not None:
            gateway.stop()
        s.stop()


def start_group(s):
    s.start_group("g", None, "--server-key", str(s.keys / "broker.pub"), "--key", str(s.keys / "group.key"))
