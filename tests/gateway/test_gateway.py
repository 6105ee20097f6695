"""imgq-gateway against a real broker and worker group, with CURVE and two
tenants: every route, its errors as problem details, results byte for byte
the reference pipeline's."""

import http.client
import os
import time

from conftest import SAMPLES, TOKENS, Gateway, start_group

BLUR = ["gaussian_blur:ksize=5"]
PHOTO = os.path.join(SAMPLES, "aero1.jpg")


def photo():
    with open(PHOTO, "rb") as f:
        return f.read()


def wait_state(gw, job, states, who="alice", timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = gw.json("GET", "/v1/jobs/" + job, who=who)
        assert status == 200, body
        if body["state"] in states:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_a_job_through_http_is_the_reference_result_and_only_its_tenants(curve_system):
    s, gw = curve_system, curve_system.gateway
    # No group yet: the job waits, and its result is not there (409).
    status, headers, job = gw.json("POST", "/v1/jobs?op=" + BLUR[0] + "&format=png&name=aero1.jpg", photo(),
                                   headers={"Content-Type": "image/jpeg", "Idempotency-Key": "a1"})
    assert status == 202, job
    assert headers["location"] == "/v1/jobs/" + job["id"]
    assert job["state"] == "queued" and job["name"] == "aero1.jpg"
    status, headers, problem = gw.json("GET", "/v1/jobs/%s/result" % job["id"])
    assert status == 409 and headers["content-type"] == "application/problem+json"
    assert problem["code_name"] == "unavailable" and "queued" in problem["detail"]
    # The same Idempotency-Key names the same job.
    status, _, again = gw.json("POST", "/v1/jobs?op=" + BLUR[0] + "&format=png", photo(),
                               headers={"Idempotency-Key": "a1"})
    assert status == 200 and again["id"] == job["id"]
    # bob sees nothing of it.
    for method, path in (("GET", "/v1/jobs/" + job["id"]), ("GET", "/v1/jobs/%s/result" % job["id"]),
                         ("DELETE", "/v1/jobs/" + job["id"])):
        status, _, problem = gw.json(method, path, who="bob")
        assert status == 404 and problem["code_name"] == "not_found", (method, path, problem)
    status, _, listed = gw.json("GET", "/v1/jobs", who="bob")
    assert status == 200 and listed["jobs"] == []
    status, _, listed = gw.json("GET", "/v1/jobs?state=queued&limit=10")
    assert [j["id"] for j in listed["jobs"]] == [job["id"]] and listed["next_cursor"] is None

    start_group(s)
    wait_state(gw, job["id"], ("done",))
    status, headers, image = gw.request("GET", "/v1/jobs/%s/result" % job["id"])
    assert status == 200 and headers["content-type"] == "image/png"
    assert headers["x-imgq-job"] == job["id"] and 'filename="aero1.png"' in headers["content-disposition"]
    assert image == s.reference(BLUR, PHOTO, "png")
    status, _, groups = gw.json("GET", "/v1/groups")
    assert status == 200 and [g["name"] for g in groups["groups"]] == ["g"]
    # DELETE of a finished job forgets it: its result is gone (404 saying so).
    assert gw.request("DELETE", "/v1/jobs/" + job["id"])[0] == 204
    status, _, problem = gw.json("GET", "/v1/jobs/%s/result" % job["id"])
    assert status == 404 and "acknowledged" in problem["detail"], problem


def test_process_answers_with_the_image_and_errors_are_problem_details(curve_system):
    s, gw = curve_system, curve_system.gateway
    start_group(s)
    status, headers, image = gw.request("POST", "/v1/process?op=grayscale&op=" + BLUR[0] + "&format=png", photo())
    assert status == 200 and headers["content-type"] == "image/png"
    assert image == s.reference(["grayscale"] + BLUR, PHOTO, "png")

    def problem(method, path, body=None, who="alice", headers=None):
        status, h, p = gw.json(method, path, body, who, headers)
        assert h["content-type"] == "application/problem+json", (status, p)
        return status, p

    status, p = problem("POST", "/v1/jobs?op=gaussian_blur:ksize=4", photo())
    assert status == 400 and p["code_name"] == "invalid_argument" and "ksize" in p["detail"]
    status, p = problem("POST", "/v1/jobs?op=invert", b"not an image at all")
    assert status == 415 and p["code_name"] == "invalid_image"
    status, p = problem("POST", "/v1/jobs?op=invert", b"")
    assert status == 400
    for bad in ("priority=high", "timeout=soon", "wait=abc"):
        status, p = problem("POST", "/v1/process?op=invert&" + bad, photo())
        assert status == 400 and "seconds" in p["detail"], (bad, p)
    status, p = problem("GET", "/v1/jobs/0123456789abcdef")
    assert status == 404
    status, p = problem("GET", "/v1/nothing")
    assert status == 404 and "/v1/openapi.json" in p["detail"]
    status, p = problem("PUT", "/v1/jobs")
    assert status == 405
    # No token, or a wrong one: 401, with how to send one.
    status, p = problem("GET", "/v1/jobs", who=None)
    assert status == 401 and "Authorization: Bearer" in p["detail"]
    status, p = problem("GET", "/v1/jobs", who=None, headers={"Authorization": "Bearer " + TOKENS["bob"][:-1]})
    assert status == 401
    # Health needs no token.
    status, _, health = gw.json("GET", "/v1/health", who=None)
    assert status == 200 and health["broker"] == "reachable"


def test_an_oversize_body_is_refused_before_it_is_read(curve_system):
    gw = curve_system.gateway
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    conn.putrequest("POST", "/v1/jobs?op=invert")
    conn.putheader("Authorization", "Bearer " + TOKENS["alice"])
    conn.putheader("Content-Length", str(10 ** 12))  # a terabyte, never sent
    conn.endheaders()
    started = time.monotonic()
    r = conn.getresponse()
    assert r.status == 413 and b"too_large" in r.read()
    assert time.monotonic() - started < 10


def test_a_queued_job_is_cancelled_by_delete(curve_system):
    gw = curve_system.gateway
    status, _, job = gw.json("POST", "/v1/jobs?op=invert", photo())  # no group: it waits
    assert status == 202
    status, _, cancelled = gw.json("DELETE", "/v1/jobs/" + job["id"])
    assert status == 200 and cancelled["state"] == "cancelled"
    status, _, p = gw.json("GET", "/v1/jobs/%s/result" % job["id"])
    assert status == 409 and p["code_name"] == "cancelled"


def test_a_broker_that_is_not_there_is_a_503_within_seconds(tmp_path):
    import socket
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gw = Gateway(tmp_path, "tcp://127.0.0.1:%d" % port)
    try:
        started = time.monotonic()
        status, headers, p = gw.json("POST", "/v1/jobs?op=invert", photo(), who=None)
        assert status == 503 and p["code_name"] == "unavailable" and "nothing listens there" in p["detail"]
        assert time.monotonic() - started < 10
        status, _, health = gw.json("GET", "/v1/health", who=None)
        assert status == 503 and health["broker"] == "unreachable"
    finally:
        gw.stop()


def read_events(response, until):
    """The `data` of each Server-Sent Event as JSON, until ``until(event)``."""
    import json
    events = []
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line.startswith("data: "):
            events.append(json.loads(line[6:]))
            if until(events[-1]):
                break
    return events


def test_a_jobs_states_come_as_server_sent_events_in_order(curve_system):
    s, gw = curve_system, curve_system.gateway
    status, _, job = gw.json("POST", "/v1/jobs?op=" + BLUR[0], photo())  # no group: it waits
    assert status == 202
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=60)
    conn.request("GET", "/v1/jobs/%s/events" % job["id"], headers={"Authorization": "Bearer " + TOKENS["alice"]})
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Content-Type") == "text/event-stream"
    # The tenant's stream of all its jobs, opened too.
    every = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=60)
    every.request("GET", "/v1/events", headers={"Authorization": "Bearer " + TOKENS["alice"]})
    all_events = every.getresponse()
    assert all_events.status == 200
    first = read_events(r, lambda e: True)
    assert first[0]["state"] == "queued"  # its state when the stream began
    start_group(s)
    rest = read_events(r, lambda e: e["state"] in ("done", "failed", "cancelled"))
    states = [e["state"] for e in first + rest]
    assert states[-1] == "done" and set(states) <= {"queued", "running", "done"}, states
    assert states.index("done") > 0
    assert r.read().strip() == b""  # the stream ended with the job
    conn.close()
    # Another job on the tenant's stream, start to end.
    status, _, other = gw.json("POST", "/v1/jobs?op=invert", photo())
    seen = read_events(all_events, lambda e: e["id"] == other["id"] and e["state"] == "done")
    assert [e for e in seen if e["id"] == other["id"]][-1]["state"] == "done"
    every.close()
    # bob may not follow alice's job.
    status, _, p = gw.json("GET", "/v1/jobs/%s/events" % job["id"], who="bob")
    assert status == 404


def test_a_broker_restart_loses_nothing_and_runs_nothing_twice(curve_system):
    import signal
    s, gw = curve_system, curve_system.gateway
    args = ("--curve-key", str(s.keys / "broker.key"), "--allow-clients", str(s.keys / "clients.allow"),
            "--allow-workers", str(s.keys / "workers.allow"))
    key = {"Idempotency-Key": "restart-1"}
    status, _, job = gw.json("POST", "/v1/jobs?op=" + BLUR[0], photo(), headers=key)  # no group: it waits
    assert status == 202
    os.killpg(s.broker.pid, signal.SIGKILL)
    s.broker.wait()
    # While it is down: 503 within seconds, with a retry hint.
    started = time.monotonic()
    status, headers, p = gw.json("POST", "/v1/jobs?op=" + BLUR[0], photo(), headers=key)
    assert status == 503 and headers["retry-after"] == "1" and time.monotonic() - started < 10, p
    s.start_broker(*args)  # the same ports and journal
    # The same request again names the same job (accepted before the crash).
    status, _, again = gw.json("POST", "/v1/jobs?op=" + BLUR[0], photo(), headers=key)
    assert status == 200 and again["id"] == job["id"], again
    start_group(s)
    wait_state(gw, job["id"], ("done",))
    status, _, image = gw.request("GET", "/v1/jobs/%s/result" % job["id"])
    assert status == 200 and image == s.reference(BLUR, PHOTO, "png")
    status, _, listed = gw.json("GET", "/v1/jobs")
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]  # one job, not two


def test_an_html_form_upload_is_a_job_too(curve_system):
    s, gw = curve_system, curve_system.gateway
    start_group(s)
    boundary = "----imgqtest7MA4YWxk"
    parts = []
    for name, value in (("op", "grayscale"), ("op", BLUR[0]), ("format", "png")):
        parts.append(b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' %
                     (boundary.encode(), name.encode(), value.encode()))
    parts.append(b'--%s\r\nContent-Disposition: form-data; name="file"; filename="aero1.jpg"\r\n'
                 b'Content-Type: image/jpeg\r\n\r\n' % boundary.encode() + photo() + b"\r\n")
    body = b"".join(parts) + b"--%s--\r\n" % boundary.encode()
    status, headers, image = gw.request("POST", "/v1/process", body,
                                        headers={"Content-Type": "multipart/form-data; boundary=" + boundary})
    assert status == 200, image
    assert 'filename="aero1.png"' in headers["content-disposition"]  # the file part's name
    assert image == s.reference(["grayscale"] + BLUR, PHOTO, "png")
    status, _, p = gw.json("POST", "/v1/jobs", body.replace(b'name="file"', b'name="image"'),
                           headers={"Content-Type": "multipart/form-data; boundary=" + boundary})
    assert status == 400 and 'part named "file"' in p["detail"]


def test_sigterm_ends_open_event_streams_and_the_gateway_exits(curve_system):
    import signal
    gw = curve_system.gateway
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    conn.request("GET", "/v1/events", headers={"Authorization": "Bearer " + TOKENS["alice"]})
    assert conn.getresponse().status == 200  # streaming, nothing to say yet
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.proc.wait(timeout=10) == 0


def test_the_openapi_document_names_every_route_the_gateway_serves(curve_system):
    gw = curve_system.gateway
    status, headers, doc = gw.json("GET", "/v1/openapi.json", who=None)
    assert status == 200 and doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    methods = 0
    for path, item in doc["paths"].items():
        for method in ("get", "post", "delete"):
            if method not in item:
                continue
            methods += 1
            if path.endswith("/events"):  # a stream: only whether it is routed (401 without a token)
                status, _, p = gw.json("GET", path.replace("{id}", "0123456789abcdef"), who=None)
                assert status == 401, path
                continue
            status, _, _ = gw.request(method.upper(), path.replace("{id}", "0123456789abcdef"), b"", who="bob")
            assert status != 405, (method, path)
            if status == 404:
                _, _, p = gw.json(method.upper(), path.replace("{id}", "0123456789abcdef"), b"", who="bob")
                assert "no such route" not in p["detail"], (method, path)
    assert methods == 11
