"""The Python client against a live broker and worker group: results
byte-identical to whole-image OpenCV, progress, failures as exceptions,
cancel, map over a folder, keys, a broker restart."""

import os
import shutil
import threading
import zlib

import pytest

import imgq
from conftest import SAMPLES, pnm

BLUR = ["gaussian_blur:ksize=5"]


def test_submit_path_and_bytes_give_the_reference_result(system, tmp_path):
    source = os.path.join(SAMPLES, "fruits.jpg")
    ops = ["grayscale", "gaussian_blur:ksize=5", "canny:low=50,high=150"]
    with system.client() as c:
        by_path = c.submit(source, ops=ops, format="pgm")
        with open(source, "rb") as f:
            by_bytes = c.submit(f.read(), ops=ops, format="pgm", name="fruits from bytes")
        expected = system.reference(ops, source, "pgm")
        assert by_path.result(timeout=60) == expected
        assert by_bytes.result(timeout=60) == expected
        assert by_path.state == "done"
        assert by_path.stats["group"] == "py"
        # The broker sends the result's CRC-32 (zlib's), and it was checked.
        assert by_path._final.get("crc32") == zlib.crc32(expected)


def test_a_result_damaged_on_the_way_is_an_io_error_and_not_acknowledged():
    from imgq.client import _check_result
    data = b"RESULT"
    _check_result({"job": "j", "crc32": zlib.crc32(data)}, data)  # intact
    _check_result({"job": "j"}, data)  # a broker before checksums sends none
    with pytest.raises(imgq.errors.IoError) as e:
        _check_result({"job": "j", "crc32": zlib.crc32(data)}, b"RESULt")
    assert "arrived damaged" in str(e.value) and "stays at the broker: fetch j" in str(e.value)


@pytest.mark.parametrize("width,height,channels,depth16", [
    (1, 1, 1, False), (37, 5, 3, False), (64, 129, 1, True), (3, 71, 3, True)])
def test_odd_sizes_depths_and_channels_are_exact(system, tmp_path, width, height, channels, depth16):
    ext = "pgm" if channels == 1 else "ppm"
    source = tmp_path / ("made." + ext)
    source.write_bytes(pnm(width, height, channels, depth16, seed=width))
    with system.client() as c:
        got = c.submit(str(source), ops=BLUR).result(timeout=60)
    assert got == system.reference(BLUR, source, ext)


def test_progress_events_come_in_order_to_the_callback(system):
    events = []
    with system.client() as c:
        job = c.submit(os.path.join(SAMPLES, "baboon.jpg"), ops=["grayscale", "gaussian_blur:ksize=3"])
        job.on_progress(events.append)
        job.wait(timeout=60)
    states = [e.state for e in events]
    assert states, "no progress event"
    order = {"queued": 0, "running": 1, "done": 2}
    assert [order[s] for s in states] == sorted(order[s] for s in states), states
    assert states[-1] == "done"
    assert all(e.job == job.id for e in events)


def test_a_corrupt_image_is_refused_with_its_own_exception(system, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    with system.client() as c:
        with pytest.raises(imgq.InvalidImage) as refused:
            c.submit(str(bad), ops=BLUR)
        assert refused.value.code == 2 and "bad.png" in refused.value.message
        with pytest.raises(imgq.InvalidArgument):
            c.submit(str(bad), ops=["no_such_op"])
        with pytest.raises(imgq.NotFound):
            c.submit(str(tmp_path / "missing.png"))


def test_a_job_that_fails_raises_job_failed_with_code_and_message(system, tmp_path):
    sixteen = tmp_path / "deep.pgm"
    sixteen.write_bytes(pnm(20, 10, 1, True, seed=3))
    with system.client() as c:
        job = c.submit(str(sixteen), ops=["canny"])  # 8-bit only: fails on the group
        with pytest.raises(imgq.JobFailed) as failed:
            job.result(timeout=60)
    assert failed.value.code == 3 and failed.value.code_name == "unsupported"
    assert "8-bit" in failed.value.message
    assert failed.value.job == job.id


def test_cancel_of_a_queued_job(tmp_path):
    from conftest import System
    s = System(tmp_path)
    try:
        s.start_broker()  # no group: the job stays queued
        with s.client() as c:
            job = c.submit(os.path.join(SAMPLES, "lena.jpg") if os.path.exists(os.path.join(SAMPLES, "lena.jpg"))
                           else os.path.join(SAMPLES, "home.jpg"), ops=BLUR)
            assert c.status(job.id).state == "queued"
            assert job.cancel().state == "cancelled"
            with pytest.raises(imgq.JobFailed) as cancelled:
                job.result(timeout=30)
            assert cancelled.value.code == 9 and cancelled.value.state == "cancelled"
            with pytest.raises(imgq.NotFound):
                c.status("0123456789abcdef")
    finally:
        s.stop()


def test_map_over_a_folder_writes_every_result_and_reports_failures(system, tmp_path):
    inbox = tmp_path / "in"
    (inbox / "sub").mkdir(parents=True)
    names = ["aloeL.jpg", "home.jpg", "chessboard.png", "box.png", "sub/butterfly.jpg"]
    for name in names:
        shutil.copy(os.path.join(SAMPLES, os.path.basename(name)), inbox / name)
    (inbox / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    seen = []
    with system.client() as c:
        outcomes = list(c.map(str(inbox), ops=["grayscale"] + BLUR, out=str(tmp_path / "out"), window=3,
                              format="png", on_progress=seen.append))
    assert len(outcomes) == 6
    failed = [o for o in outcomes if not o.ok]
    assert [os.path.basename(o.path) for o in failed] == ["broken.jpg"]
    assert isinstance(failed[0].error, imgq.InvalidImage)
    for o in outcomes:
        if o.ok:
            rel = os.path.relpath(o.path, inbox)
            assert o.output == str(tmp_path / "out" / (os.path.splitext(rel)[0] + ".png"))
            assert open(o.output, "rb").read() == system.reference(["grayscale"] + BLUR, o.path, "png")
    assert seen, "no progress event reached the callback"


def test_the_same_key_names_the_same_job_and_its_result(system):
    source = os.path.join(SAMPLES, "home.jpg")
    with system.client() as c:
        first = c.submit(source, ops=BLUR, key="py-key-1")
        data = first.result(timeout=60, ack=False)
    with system.client() as other:
        again = other.submit(source, ops=BLUR, key="py-key-1")
        assert again.existing and again.id == first.id
        assert again.result(timeout=30) == data
        with pytest.raises(imgq.Conflict):
            other.submit(source, ops=["grayscale"], key="py-key-1")


def test_a_broker_restart_loses_no_accepted_job(system, tmp_path):
    # The group holds every job until the test opens the gate, so the
    # broker dies with all of them accepted and none finished.
    gate = tmp_path / "gate"
    gate.touch()
    from conftest import _stop
    for g in system.groups:
        _stop(g)  # the whole process group: mpiexec and its ranks
    system.groups.clear()
    system.start_group("held", env={"IMGQ_FAULT": "hold:compute:*:" + str(gate)})
    system.await_groups(1)
    sources = [os.path.join(SAMPLES, n) for n in ("aloeL.jpg", "home.jpg", "box.png", "chessboard.png")]
    with system.client(timeout=20) as c:
        jobs = [c.submit(s, ops=BLUR, format="png") for s in sources]
        system.broker.kill()
        system.broker.wait()
        system.start_broker()
        gate.write_bytes(b"." * 1000)
        for source, job in zip(sources, jobs):
            assert job.result(timeout=120) == system.reference(BLUR, source, "png")


def test_fetch_from_another_client_and_ack(system):
    source = os.path.join(SAMPLES, "box.png")
    with system.client() as c:
        job = c.submit(source, ops=BLUR)
        job.wait(timeout=60)
        job_id = job.id
    with system.client() as other:
        assert other.fetch(job_id) == system.reference(BLUR, source, "png")
        with pytest.raises(imgq.NotFound):
            other.submit(source, ops=BLUR, key=job.key)  # acknowledged: the key is spent


def test_an_unreachable_broker_raises_unavailable_in_bounded_time():
    import time
    start = time.monotonic()
    with pytest.raises(imgq.Unavailable):
        imgq.Client("tcp://127.0.0.1:1", progress="tcp://127.0.0.1:2", timeout=0.5)
    assert time.monotonic() - start < 10


def test_a_broker_that_is_down_is_unavailable_within_five_seconds_with_the_default_timeout():
    import time
    start = time.monotonic()
    with pytest.raises(imgq.Unavailable) as raised:
        imgq.Client("127.0.0.1:1")  # HOST:PORT, as people write it
    assert time.monotonic() - start < 5
    assert "is imgq-broker running" in str(raised.value)


def test_endpoints_as_people_write_them_and_garbage_refused():
    assert imgq.normalize_endpoint("127.0.0.1:5555") == "tcp://127.0.0.1:5555"
    assert imgq.normalize_endpoint("localhost:5555") == "tcp://localhost:5555"
    assert imgq.normalize_endpoint("tcp://[::1]:5555") == "tcp://[::1]:5555"
    for garbage in ("127.0.0.1", "5555", "tcp://", "http://x:1", "a b:1", "host:99999"):
        with pytest.raises(imgq.InvalidArgument):
            imgq.Client(garbage)


def test_ops_as_one_string_is_one_op_and_ping_is_typed(system):
    with system.client() as c:
        pong = c.ping()
        assert isinstance(pong, imgq.Pong) and pong.groups == 1
        assert [g.ranks for g in pong.group_list] == [2]
        source = os.path.join(SAMPLES, "box.png")
        got = c.submit(source, ops="gaussian_blur:ksize=5").result(timeout=60)
        assert got == system.reference(BLUR, source, "png")
        with pytest.raises(TypeError):
            c.submit(source, ops=b"invert")
        listed, _ = c.jobs(limit=5)
        assert listed and listed[0].state == "done"


def test_curve_admits_a_listed_key_and_refuses_another(tmp_path):
    from conftest import BIN, System
    import subprocess
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("broker", "alice", "mallory"):
        subprocess.run([os.path.join(BIN, "imgq"), "keygen", str(keys / name)], check=True, capture_output=True)
    (keys / "clients.allow").write_text((keys / "alice.pub").read_text())
    (keys / "workers.allow").write_text("")
    s = System(tmp_path)
    try:
        s.start_broker("--curve-key", str(keys / "broker.key"), "--allow-clients", str(keys / "clients.allow"),
                       "--allow-workers", str(keys / "workers.allow"))
        with s.client(server_key=str(keys / "broker.pub"), key=str(keys / "alice.key"), timeout=10) as c:
            job = c.submit(os.path.join(SAMPLES, "box.png"), ops=BLUR)  # no group: it waits, queued
            assert c.status(job.id).state == "queued"
        with pytest.raises(imgq.PermissionDenied):
            s.client(server_key=str(keys / "broker.pub"), key=str(keys / "mallory.key"), timeout=10)
        with pytest.raises(imgq.InvalidArgument):
            s.client(server_key=str(keys / "broker.pub"), key=str(keys / "mallory.pub"))  # not a secret key
    finally:
        s.stop()


def test_with_curve_each_client_sees_only_its_own_jobs_and_a_taken_session_is_replaced(tmp_path, monkeypatch):
    from conftest import BIN, System
    import subprocess
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("broker", "alice", "bob"):
        subprocess.run([os.path.join(BIN, "imgq"), "keygen", str(keys / name)], check=True, capture_output=True)
    (keys / "clients.allow").write_text((keys / "alice.pub").read_text() + (keys / "bob.pub").read_text())
    (keys / "workers.allow").write_text("")
    s = System(tmp_path)
    try:
        s.start_broker("--curve-key", str(keys / "broker.key"), "--allow-clients", str(keys / "clients.allow"),
                       "--allow-workers", str(keys / "workers.allow"))
        server = str(keys / "broker.pub")
        with s.client(server_key=server, key=str(keys / "alice.key"), timeout=10) as alice:
            assert alice.ping().protocol == imgq.protocol.REVISION == "1.1"
            secret = alice.submit(os.path.join(SAMPLES, "box.png"), ops=BLUR, name="patient.png")  # no group: queued
            # bob draws alice's session first: the broker refuses it, and the client takes another.
            drawn = [bytes.fromhex(alice._session)]
            real = os.urandom
            monkeypatch.setattr(imgq.client.os, "urandom", lambda n: drawn.pop() if drawn else real(n))
            with s.client(server_key=server, key=str(keys / "bob.key"), timeout=10) as bob:
                assert not drawn and bob._session != alice._session  # drew hers, then another
                own = bob.submit(os.path.join(SAMPLES, "box.png"), ops=BLUR, name="bobs.png")
                assert [j.job for j in bob.jobs()[0]] == [own.id]
                with pytest.raises(imgq.NotFound):
                    bob.status(secret.id)
            assert [j.job for j in alice.jobs()[0]] == [secret.id]
    finally:
        s.stop()


def test_the_progress_endpoint_comes_from_the_brokers_pong(system):
    # Ephemeral ports: only the broker knows where its progress socket is.
    with imgq.Client(system.clients, timeout=10) as c:
        assert c.progress == system.progress
        events = []
        job = c.submit(os.path.join(SAMPLES, "box.png"), ops=BLUR)
        job.on_progress(events.append)
        job.wait(timeout=60)
        assert events[-1].state == "done"
    assert imgq.progress_endpoint_from("tcp://10.1.2.3:6000", "tcp://0.0.0.0:6002") == "tcp://10.1.2.3:6002"
    assert imgq.progress_endpoint_from("tcp://10.1.2.3:6000", "") == "tcp://10.1.2.3:5557"


def test_the_op_catalogue_comes_from_the_broker(system):
    with system.client() as c:
        ops = {op["name"]: op for op in c.ops()}
    assert {"grayscale", "gaussian_blur", "canny", "equalize_hist"} <= set(ops)
    ksize = ops["gaussian_blur"]["params"][0]
    assert (ksize["key"], ksize["type"], ksize["default"], ksize["odd"]) == ("ksize", "int", "5", True)
    assert ksize["min"] == 1 and ksize["max"] == 255


def test_map_never_replaces_a_different_file_unless_told_and_never_an_input(system, tmp_path):
    source = tmp_path / "in" / "home.jpg"
    source.parent.mkdir()
    shutil.copy(os.path.join(SAMPLES, "home.jpg"), source)
    out = tmp_path / "out"
    out.mkdir()
    (out / "home.png").write_bytes(b"someone else's file")
    with system.client() as c:
        first = list(c.map(str(source), ops=["grayscale"], out=str(out), format="png"))
        again = list(c.map(str(source), ops=["grayscale"], out=str(out), format="png"))
        replaced = list(c.map(str(source), ops=["grayscale"], out=str(out), format="png", overwrite=True))
        onto_input = list(c.map(str(source), ops=["grayscale"], out=str(source.parent), format="jpg",
                                overwrite=True))
    expected = system.reference(["grayscale"], str(source), "png")
    assert (out / "home.png").read_bytes() == expected  # replaced, as told
    assert first[0].ok and first[0].output == str(out / "home.1.png")
    assert (out / "home.1.png").read_bytes() == expected
    assert again[0].ok and again[0].output == str(out / "home.1.png"), "identical bytes count as written"
    assert not (out / "home.2.png").exists()
    assert replaced[0].ok and replaced[0].output == str(out / "home.png")
    assert not onto_input[0].ok and isinstance(onto_input[0].error, imgq.InvalidArgument)
    assert "the input itself" in onto_input[0].error.message
    assert source.read_bytes() == open(os.path.join(SAMPLES, "home.jpg"), "rb").read()


def test_the_worked_session_in_the_client_spec_decodes():
    # schemas/CLIENT-PROTOCOL.md section 14: every frame's hex is what its
    # line says, and the session holds together (ids, reqs, the checksum).
    import re
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    text = open(os.path.join(root, "schemas", "CLIENT-PROTOCOL.md"), encoding="utf-8").read()
    section = text[text.index("## 14."):]
    frames = [bytes.fromhex("".join(b.split())) for b in re.findall(r"```\n([0-9a-f\n]+)```", section)]
    assert len(frames) == 18
    headers = []
    for frame in frames:
        if frame.startswith(b"\x89PNG") or len(frame) in (8, 16):
            continue
        h = imgq.protocol.decode(frame)
        assert h["sig"] == "IMGQ" and h["ver"] == 1
        headers.append(h)
    types = [h["type"] for h in headers]
    assert types == ["ping", "pong", "ping", "pong", "ping", "pong", "pong", "submit", "accepted", "event", "result",
                     "event", "result_ack"]
    submit, accepted, result = headers[7], headers[8], headers[10]
    assert accepted["req"] == result["req"] == submit["req"]
    assert accepted["job"].startswith(submit["session"]) and result["job"] == accepted["job"]
    assert headers[-1]["job"] == accepted["job"]
    assert headers[6]["req"] == headers[4]["req"]  # the copy on the SUB of the last ping's pong
    assert headers[1]["protocol"] == imgq.protocol.REVISION
    image = [f for f in frames if f.startswith(b"\x89PNG")][1]  # the result's frame
    assert zlib.crc32(image) == result["crc32"]
