"""A client of an imgq broker: submit image jobs, follow their progress,
take their results. Pure Python on pyzmq and msgpack; written from
schemas/CLIENT-PROTOCOL.md.

One thread uses a Client. It does its I/O while you wait in it (in
``submit``, ``Job.result``, ``Job.wait``, ``map``, ...), and progress
callbacks run there too. Every wait has a bound: a broker silent for
``timeout`` seconds raises Unavailable, a job not done within the time
given raises Timeout, and Ctrl-C interrupts any wait."""

import os
import re
import tempfile
import time
import zlib
from collections import namedtuple

try:
    import zmq
except ImportError as e:  # pragma: no cover - depends on the interpreter
    raise ImportError(
        "imgq needs pyzmq and msgpack. On Debian: apt install python3-zmq python3-msgpack, and run Debian's "
        "/usr/bin/python3 (a python3 of its own, e.g. pyenv's, does not see them: make a venv with "
        "'/usr/bin/python3 -m venv --system-site-packages ENV', or pip install pyzmq msgpack into yours)") from e

from . import errors, protocol

DEFAULT_BROKER = "tcp://127.0.0.1:5555"
FIRST_CONTACT = 3.0  # seconds the broker has to answer at first before Unavailable
_PING_INTERVAL = 1.0  # seconds between pings while waiting
_FINISHED_KEPT = 10000  # job ids whose result was handled, to acknowledge a repeat

Event = namedtuple("Event", "job state done total position group attempts code message name time")
Event.__doc__ = """A job's whole state as last published: ``state`` is queued, running,
done, failed or cancelled; ``done``/``total`` the stages of a job run in
strips (0/0 for one run whole); ``position`` in the queue (1 = next)."""

Outcome = namedtuple("Outcome", "path output job error stats data")
Outcome.__doc__ = """One input of ``Client.map``: ``error`` is None on success (an
ImgqError otherwise); ``output`` the file written (None without ``out``, then
``data`` holds the result's bytes)."""
Outcome.ok = property(lambda self: self.error is None)

Group = namedtuple("Group", "name ranks slots running idle_seconds")
Group.__doc__ = """A worker group as the broker lists it: ``slots`` jobs at once,
``running`` held now, ``idle_seconds`` since it last held one."""

Pong = namedtuple("Pong", "groups idle busy ranks queued running version instance max_image_bytes durable "
                          "progress group_list journal protocol")
Pong.__doc__ = """The broker's state (``ping``): counts of groups and jobs, its
version, ``instance`` (new at every start), ``durable`` (a journal), its
``progress`` endpoint, ``group_list`` (Group each), ``journal`` (its disk:
healthy, read_only, full, failing; "" without one) and ``protocol`` (the
protocol revision it speaks, "1.1"; "" from brokers before 1.1)."""

ListedJob = namedtuple("ListedJob", "job state name submitted finished kept group attempts code message")
ListedJob.__doc__ = """A job as ``Client.jobs`` lists it (``submitted``/``finished``
Unix seconds, 0 when not yet; ``kept``: its result waits to be fetched)."""

_ENDPOINT = re.compile(r"^(?:(tcp)://)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$")


def normalize_endpoint(text, what="broker"):
    """``tcp://HOST:PORT`` for ``HOST:PORT`` (or the same); ipc:// and inproc://
    as they are. InvalidArgument saying the form expected otherwise."""
    text = str(text).strip()
    if text.startswith(("ipc://", "inproc://")) and len(text.split("://", 1)[1]) > 0:
        return text
    m = _ENDPOINT.match(text)
    if not m or not 0 < int(m.group(3)) < 65536:
        hint = ""
        if text.isdigit():
            hint = " (a port without a host; did you mean 127.0.0.1:%s?)" % text
        raise errors.InvalidArgument("%s %r is not an endpoint%s: give HOST:PORT or tcp://HOST:PORT, e.g. "
                                     "127.0.0.1:5555" % (what, text, hint))
    return "tcp://%s:%s" % (m.group(2), m.group(3))


def _ops_list(ops):
    """``ops`` as a list of specs: a str is one op (not its letters)."""
    if isinstance(ops, str):
        return [ops]
    if isinstance(ops, (bytes, bytearray)):
        raise TypeError("ops must be a str (one op) or a list of str, not bytes")
    return [str(op) for op in ops]


def progress_endpoint_from(broker, announced):
    """The progress endpoint a broker announced in its pong, its wildcard
    host replaced by the host ``broker`` names."""
    if not announced:
        return default_progress_endpoint(broker)
    scheme, sep, rest = announced.partition("://")
    host, colon, port = rest.rpartition(":")
    if not sep or not colon or host not in ("0.0.0.0", "*", "[::]", "::"):
        return announced
    broker_host = broker.partition("://")[2].rpartition(":")[0]
    if broker_host in ("*", "0.0.0.0", ""):
        broker_host = "127.0.0.1"
    return "%s://%s:%s" % (scheme, broker_host, port)


def default_progress_endpoint(broker):
    """The progress endpoint that goes with ``broker``: same host, port 5557."""
    scheme, sep, rest = broker.partition("://")
    host = rest.rsplit(":", 1)[0] if sep else "127.0.0.1"
    if host in ("*", "0.0.0.0", ""):
        host = "127.0.0.1"
    return "%s://%s:5557" % (scheme if sep else "tcp", host)


def _read_key_file(path, secret):
    """Z85 keys from an ``imgq keygen`` file: (public, secret) of a .key,
    the public key of a .pub."""
    words = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                words[parts[0]] = parts[1]
            elif len(parts) == 1 and "public" not in words:
                words["public"] = parts[0]
    public = words.get("public", "")
    if len(public) != 40 or (secret and len(words.get("secret", "")) != 40):
        raise errors.InvalidArgument("%s is not an imgq %s key file (make one with imgq keygen)"
                                     % (path, "secret" if secret else "public"))
    return (public.encode(), words["secret"].encode()) if secret else public.encode()


def _write_durably(path, data, replace=True):
    """``data`` to ``path`` through a temporary file and fsyncs; the path
    written. Unless ``replace``, a different file already at ``path`` is
    kept and the result goes to NAME.1.EXT (NAME.2.EXT, ...), as ``imgq
    submit`` does; identical bytes already there count as written."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
            written = path
        else:
            written = _place_without_replacing(tmp, path, data)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return written


def _place_without_replacing(tmp, path, data):
    """Links ``tmp`` at ``path`` or the first free NAME.N.EXT (a link never
    replaces a file), then removes ``tmp``; the path used."""
    stem, ext = os.path.splitext(path)
    for n in range(0, 10000):
        candidate = path if n == 0 else "%s.%d%s" % (stem, n, ext)
        try:
            os.link(tmp, candidate)
        except FileExistsError:
            try:
                with open(candidate, "rb") as f:
                    if f.read() == data:  # written before, by an earlier run
                        os.unlink(tmp)
                        return candidate
            except OSError:
                pass
            continue
        os.unlink(tmp)
        return candidate
    raise FileExistsError("no free name for %s (NAME.1%s to NAME.9999%s are taken)" % (path, ext, ext))


def _check_result(header, data):
    """IoError when a result's bytes differ from the CRC-32 (zlib's) the
    broker sent with them (``crc32``; brokers before it send none)."""
    expected = header.get("crc32")
    if expected is None or data is None:
        return
    got = zlib.crc32(data) & 0xFFFFFFFF
    if got != expected:
        job = header.get("job", "")
        raise errors.IoError("the result of job %s arrived damaged (checksum %08x where the broker sent %08x); it "
                             "was not acknowledged and stays at the broker: fetch %s" % (job, got, expected, job), job=job)


class Job:
    """A job the broker accepted (stored, with a durable broker). ``id`` is
    the broker's job id, ``key`` its idempotency key, ``state`` the latest
    known state, ``stats`` the timings once done."""

    def __init__(self, client, job_id, key, name, existing, position, request, payload):
        self._client = client
        self.id = job_id
        self.key = key
        self.name = name
        self.existing = existing
        self.position = position
        self.state = "queued"
        self.stats = {}
        self.output = ""  # a local-files job: the file the group wrote
        self._request = request  # to submit again under the key after a broker restart
        self._payload = payload
        self._callbacks = []
        self._events = []
        self._final = None  # the result header
        self._data = None
        self._acked = False

    def __repr__(self):
        return "<imgq.Job %s %s %s>" % (self.id, self.name or "", self.state)

    def on_progress(self, callback):
        """Calls ``callback(event)`` with each progress event of this job (an
        Event), those seen already first, then each as it comes while the
        client waits; the last is always the job's final state. Returns
        ``callback``."""
        for event in self._events:
            callback(event)
        self._callbacks.append(callback)
        return callback

    def _publish(self, event):
        if self._events and self._events[-1].state in ("done", "failed", "cancelled"):
            return  # ended: a late event changes nothing
        self._events.append(event)
        if self._final is None:
            self.state = event.state
        for callback in self._callbacks:
            callback(event)

    def done(self):
        """True once the job has ended (done, failed or cancelled)."""
        self._client._pump(0)
        return self._final is not None

    def wait(self, timeout=None):
        """Waits until the job ends, at most ``timeout`` seconds (None: as
        long as the broker answers); its final state. Timeout if not ended."""
        self._client._run_until(lambda: self._final is not None, timeout,
                                "job %s (%s) is not done" % (self.id, self.name or "unnamed"))
        return self.state

    def result(self, timeout=None, ack=True):
        """The result image's bytes (a local-files job: the path the group
        wrote). Raises JobFailed (``code``, ``message``) if the job failed or
        was cancelled, Timeout if it is not done within ``timeout``. With
        ``ack`` the broker is told it may forget the result; pass False and
        call ``ack()`` once you have stored it, if losing it would matter."""
        self.wait(timeout)
        final = self._final
        if final.get("state") != "done":
            if ack:
                self.ack()
            raise errors.JobFailed(final.get("message", ""), code=final.get("code", 0), job=self.id,
                                   state=final.get("state", "failed"))
        if final.get("output"):
            data = self.output
        else:
            data = self._data
            _check_result(final, data)  # damaged on the way: not acknowledged, it stays at the broker
        if ack:
            self.ack()
        return data

    def ack(self):
        """Tells the broker the result is stored: it may forget it."""
        if not self._acked:
            self._acked = True
            self._data = None
            self._client.ack(self.id)

    def status(self):
        """The job's state as the broker has it now (an Event)."""
        return self._client.status(self.id)

    def cancel(self):
        """Cancels the job: a queued one at once, a running one at its next
        stage. Its state after (an Event)."""
        return self._client.cancel(self.id)


class Client:
    """A connection to an imgq broker.

    ``broker`` is its clients endpoint, ``progress`` its progress endpoint
    (default: the one the broker announces in its pong). With CURVE on, ``server_key``
    is the broker's .pub file and ``key`` this client's .key file (from
    ``imgq keygen``). ``timeout`` is the longest the broker may stay silent
    before a call raises Unavailable. The constructor checks that the
    broker answers on both endpoints: Unavailable within ``connect_timeout``
    (3 s) when it does not. Endpoints may be written HOST:PORT."""

    def __init__(self, broker=DEFAULT_BROKER, progress=None, *, server_key=None, key=None, timeout=60.0,
                 connect_timeout=FIRST_CONTACT, context=None):
        broker = normalize_endpoint(broker, "broker")
        if progress is not None:
            progress = normalize_endpoint(progress, "progress")
        self.broker = broker
        self.progress = progress
        self.connect_timeout = min(connect_timeout, timeout)
        self.timeout = timeout
        self._context = context or zmq.Context.instance()
        self._session = os.urandom(4).hex()
        self._session_taken = False  # with CURVE, another key holds the session
        self._req = 0
        self._keys = 0
        self._replies = {}  # req -> header (or None while waiting)
        self._jobs = {}  # job id -> Job, while not finished
        self._finished = {}  # job id -> None, results handled (insertion ordered)
        self._early = {}  # job id -> (header, data): a result ahead of its Job
        self._early_events = {}  # job id -> [Event]: events ahead of it
        self._resubmitted = {}  # req -> Job, submitted again after a broker restart
        self._instance = ""
        self._last_pong = time.monotonic()  # silence is counted from now
        self._last_ping = 0.0
        self.pong = {}
        self._dealer = self._context.socket(zmq.DEALER)
        self._sub = self._context.socket(zmq.SUB)
        self._monitor = None
        for s in (self._dealer, self._sub):
            s.setsockopt(zmq.LINGER, 0)
        if server_key or key:
            if not (server_key and key):
                raise errors.InvalidArgument("CURVE needs both server_key (the broker's .pub) and key (ours)")
            server = _read_key_file(server_key, secret=False)
            public, secret = _read_key_file(key, secret=True)
            for s in (self._dealer, self._sub):
                s.curve_serverkey = server
                s.curve_publickey = public
                s.curve_secretkey = secret
            self._monitor = self._dealer.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        self._sub.setsockopt_string(zmq.SUBSCRIBE, self._session)
        self._dealer.connect(broker)
        try:
            if self.progress is None:
                try:
                    pong = self._request("ping", timeout=self.connect_timeout)
                except errors.Timeout:
                    raise errors.Unavailable(self._no_answer()) from None
                self.progress = progress_endpoint_from(broker, pong.get("progress", ""))
            self._sub.connect(self.progress)
            self._subscribe()
        except BaseException:
            self.close()
            raise

    # ---- context manager ----

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Closes the sockets (acknowledgements still queued go out first,
        for up to half a second)."""
        if self._dealer is None:
            return
        if self._monitor is not None:
            self._dealer.disable_monitor()
            self._monitor.close(0)
        self._dealer.close(500)
        self._sub.close(0)
        self._dealer = self._sub = self._monitor = None

    # ---- requests ----

    def ping(self, timeout=None):
        """The broker's state now: a Pong (groups, queued, running, version,
        durable, group_list, ...)."""
        return _pong(self._request("ping", timeout=timeout))

    def jobs(self, state=None, limit=50, before=None, timeout=None):
        """This client's jobs (every client's without CURVE, or with an
        operator key), newest first: (list of ListedJob, next) where
        ``next`` is ``before`` for the following page (None: no more)."""
        fields = {"limit": int(limit)}
        if state:
            fields["state"] = state
        if before:
            fields["before"] = before
        reply = self._request("list", timeout=timeout, **fields)
        listed = []
        for j in reply.get("jobs", []):
            s = j.get("job", {})
            listed.append(ListedJob(s.get("job", ""), s.get("state", ""), s.get("name", ""), j.get("submitted", 0.0),
                                    j.get("finished", 0.0), bool(j.get("kept")), s.get("group", ""),
                                    s.get("attempts", 0), s.get("code", 0), s.get("message", "")))
        return listed, (reply.get("next") or None)

    def submit(self, image, ops=(), *, priority=4, format=None, name=None, key=None, job_timeout=None,
               local=False, output=None, timeout=None, retry=True):
        """Submits one job; returns its Job once the broker has accepted it.

        ``image`` is a path or the encoded image's bytes; ``ops`` op specs
        such as ``"gaussian_blur:ksize=5"`` (empty: the image unchanged).
        ``format`` is the result's (default: the path's own extension when
        the groups write it, else png). ``key`` is an idempotency key
        (default: one of this client's); the same key names the same job.
        ``job_timeout`` (seconds) bounds one attempt's run. With ``local``,
        the group reads ``image`` (a path) and writes ``output`` itself (both
        absolute, under its --allow-paths). A refusal that may pass (a full
        queue, the broker's disk full or read-only: ResourceExhausted,
        Unavailable) is retried with back-off (the broker's hint, at most 4
        tries a second) until ``timeout`` when ``retry``, then raised; any
        other refusal raises its ImgqError (TooLarge, InvalidImage, ...)."""
        path = None
        if isinstance(image, (bytes, bytearray, memoryview)):
            payload = bytes(image)
        else:
            path = os.fspath(image)
            payload = None if local else _read_image(path)
        if format is None:
            ext = os.path.splitext(path)[1][1:].lower() if path else ""
            format = ext if ext in protocol.OUTPUT_FORMATS else "png"
        if format not in protocol.OUTPUT_FORMATS:
            raise errors.InvalidArgument("format %r is not one of %s" % (format, ", ".join(protocol.OUTPUT_FORMATS)))
        if not 0 <= priority <= 9:
            raise errors.InvalidArgument("priority must be from 0 to 9")
        if key is None:
            self._keys += 1
            key = "%s:py%d" % (self._session, self._keys)
        request = {"ops": _ops_list(ops), "priority": int(priority), "format": format,
                   "name": name if name is not None else (path or ""), "key": key, "session": self._session,
                   "timeout_ms": int(round((job_timeout or 0) * 1000))}
        if local:
            if not output:
                raise errors.InvalidArgument("a local-files job needs output (an absolute path)")
            request["path"] = os.path.realpath(path)
            request["output"] = os.path.join(os.path.realpath(os.path.dirname(output) or "."),
                                             os.path.basename(output))
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        backoff = 0.25  # at most 4 tries a second, whatever the hint
        while True:
            try:
                reply = self._request("submit", payload=payload, timeout=max(0.0, deadline - time.monotonic()),
                                      **request)
                break
            except (errors.ResourceExhausted, errors.Unavailable) as e:
                # Queue full, the broker's disk full or read-only, the broker
                # stopping: refused, and said when to ask again.
                if not retry or not e.retryable or time.monotonic() + backoff > deadline:
                    raise
                self._run_until(lambda: False, max(backoff, e.retry_after_ms / 1000.0), None)
                backoff = min(backoff * 2, 10.0)
        job = Job(self, reply["job"], key, request["name"], bool(reply.get("existing")), reply.get("position", 0),
                  request, payload)
        if not job.id.startswith(self._session):
            self._sub.setsockopt_string(zmq.SUBSCRIBE, job.id)  # a job of an earlier client, by its key
        self._jobs[job.id] = job
        self._take_early(job)
        return job

    def ops(self, timeout=None):
        """The broker's op catalogue: a list of dicts with ``name``,
        ``summary`` and ``params`` (each ``key``, ``type`` (int, number,
        bool, enum), ``default``, ``help``, ``min``, ``max``, ``choices``,
        ``odd``)."""
        return self._request("ops", timeout=timeout).get("ops", [])

    def status(self, job_id, timeout=None):
        """A job's state (an Event); NotFound if the broker has no such job."""
        return _event(self._request("status", job=job_id, timeout=timeout).get("job", {}))

    def cancel(self, job_id, timeout=None):
        """Cancels a queued or running job; its state after (an Event)."""
        return _event(self._request("cancel", job=job_id, timeout=timeout).get("job", {}))

    def fetch(self, job_id, timeout=None, ack=True):
        """A finished job's result bytes, from any client, until it is
        acknowledged or expires. JobFailed if it failed; NotFound if the
        broker has no such job (or its result was acknowledged or expired)."""
        header, data = self._request("fetch", job=job_id, timeout=timeout, with_payload=True)
        if header.get("state") != "done":
            raise errors.JobFailed(header.get("message", ""), code=header.get("code", 0), job=job_id,
                                   state=header.get("state", "failed"))
        if not header.get("output"):
            _check_result(header, data)
        if ack:
            self.ack(job_id)
        return header.get("output") or data

    def ack(self, job_id):
        """Tells the broker a job's result is stored: it may forget it."""
        self._send(protocol.encode("result_ack", req=self._next_req(), job=job_id))

    def map(self, inputs, ops=(), out=None, *, window=16, format=None, priority=4, on_progress=None,
            timeout=None, overwrite=False):
        """Runs ``ops`` on many images, at most ``window`` at a time, and
        yields an Outcome per input as each ends (in the order they end).

        ``inputs`` is a folder (walked recursively for images, in sorted
        order), a file, or an iterable of paths, read lazily. With ``out``,
        each result is written there (a folder's relative paths kept; a
        file's name), durably, before it is acknowledged; a different file
        already at that name is kept and the result written as NAME.1.EXT
        (``overwrite``: replaced, unless it is the input itself); without
        ``out``, an Outcome's ``data`` holds it. A failure is an Outcome with
        ``error`` set, never an exception; ``timeout`` bounds each wait for a
        result."""
        ops = _ops_list(ops)
        items = _expand(inputs, out, format)
        in_flight = {}
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < window:
                try:
                    source, target, problem = next(items)
                except StopIteration:
                    exhausted = True
                    break
                if problem is not None:
                    yield Outcome(source, None, None, problem, {}, None)
                    continue
                fmt = format or (os.path.splitext(target)[1][1:].lower() if target else None)
                try:
                    job = self.submit(source, ops, priority=priority, format=fmt, timeout=timeout)
                except errors.ImgqError as e:
                    if isinstance(e, errors.Unavailable) or isinstance(e, errors.Timeout):
                        raise
                    yield Outcome(source, None, None, e, {}, None)
                    continue
                except OSError as e:
                    yield Outcome(source, None, None, errors.IoError("%s: %s" % (source, e.strerror or e)),
                                  {}, None)
                    continue
                if on_progress is not None:
                    job.on_progress(on_progress)
                in_flight[job.id] = (source, target, job)
            if not in_flight:
                return
            self._run_until(lambda: any(j._final is not None for _, _, j in in_flight.values()), timeout,
                            "no job of the map ended")
            for job_id in [i for i, (_, _, j) in in_flight.items() if j._final is not None]:
                source, target, job = in_flight.pop(job_id)
                try:
                    data = job.result(ack=False)
                except errors.JobFailed as e:
                    job.ack()
                    yield Outcome(source, None, job.id, e, job.stats, None)
                    continue
                except errors.IoError as e:  # arrived damaged: not acknowledged, it stays at the broker
                    yield Outcome(source, None, job.id, e, job.stats, None)
                    continue
                if target is None:
                    job.ack()
                    yield Outcome(source, None, job.id, None, job.stats, data)
                    continue
                if overwrite and os.path.exists(target) and os.path.samefile(target, source):
                    # Not acknowledged: the broker keeps it for fetch.
                    yield Outcome(source, None, job.id,
                                  errors.InvalidArgument("%s: its result would replace the input itself; give "
                                                         "another out folder (the result stays at the broker: "
                                                         "fetch %s)" % (source, job.id)), job.stats, None)
                    continue
                try:
                    target = _write_durably(target, data, replace=overwrite)
                except OSError as e:
                    # Not acknowledged: the broker keeps it for fetch.
                    yield Outcome(source, None, job.id,
                                  errors.IoError("cannot write %s: %s (the result stays at the broker: fetch %s)"
                                                 % (target, e.strerror or e, job.id)), job.stats, None)
                    continue
                job.ack()
                yield Outcome(source, target, job.id, None, job.stats, None)

    # ---- the I/O underneath ----

    def _next_req(self):
        self._req += 1
        return self._req

    def _send(self, header, payload=None):
        frames = [header] if payload is None else [header, payload]
        try:
            self._dealer.send_multipart(frames, flags=zmq.NOBLOCK, copy=payload is None or len(payload) < 65536)
        except zmq.Again:
            # No connection to queue it on: a refused CURVE key leaves none.
            self._check_refused()
            raise errors.Unavailable("cannot queue a message to the broker at %s (not connected)"
                                     % self.broker) from None

    def _request(self, type_, payload=None, timeout=None, with_payload=False, **fields):
        req = self._next_req()
        self._send(protocol.encode(type_, req=req, **fields), payload)
        self._replies[req] = None
        try:
            self._run_until(lambda: self._replies[req] is not None, timeout,
                            "no answer to %s within %s s" % (type_, timeout))
            header, data = self._replies[req]
        finally:
            self._replies.pop(req, None)
        if header.get("type") == "error":
            raise errors.from_reply(header)
        return (header, data) if with_payload else header

    def _no_answer(self):
        return "no answer from the broker at %s within %g s%s; is imgq-broker running there? (Client(broker=" \
               "'HOST:PORT'))" % (self.broker, self.connect_timeout,
                                  " (CURVE is on: is server_key the broker's public key?)"
                                  if self._monitor is not None else "")

    def _subscribe(self):
        """Pings with the session until the pong also arrives on the progress
        socket: from then on no event of this client's jobs is missed."""
        deadline = time.monotonic() + self.connect_timeout
        interval = 0.005
        answered = False
        answered_at = None
        tries = 1
        while time.monotonic() < deadline:
            req = self._next_req()
            try:
                self._send(protocol.encode("ping", req=req, session=self._session))
            except errors.Unavailable:
                pass  # not connected yet (or refused: the monitor says so below); ping again soon
            until = min(deadline, time.monotonic() + interval)
            while time.monotonic() < until:
                self._check_refused()
                ready = dict(self._poller().poll(max(1, int((until - time.monotonic()) * 1000))))
                if self._dealer in ready:
                    answered = self._drain_dealer() or answered
                if self._sub in ready:
                    frames = self._sub.recv_multipart()
                    if frames[0].decode(errors="replace") == self._session:
                        self._last_pong = time.monotonic()
                        return
                    self._on_event(frames)
            interval = min(interval * 2, 0.2)
            if self._session_taken and tries < 4:
                # Another client holds this session (1 in 4 billion): another one.
                tries += 1
                self._session_taken = False
                self._sub.setsockopt(zmq.UNSUBSCRIBE, self._session.encode())
                self._session = os.urandom(4).hex()
                self._sub.setsockopt(zmq.SUBSCRIBE, self._session.encode())
            if answered and not answered_at:
                answered_at = time.monotonic()
                deadline = answered_at + self.connect_timeout  # from now, for the progress socket
        if answered:
            raise errors.Unavailable("the broker answers at %s but nothing arrives from its progress endpoint %s "
                                     "(give progress='HOST:PORT', the broker's --progress)" % (self.broker, self.progress))
        raise errors.Unavailable(self._no_answer())

    def _poller(self):
        poller = zmq.Poller()
        poller.register(self._dealer, zmq.POLLIN)
        poller.register(self._sub, zmq.POLLIN)
        return poller

    def _check_refused(self):
        if self._monitor is None:
            return
        while self._monitor.poll(0):
            self._monitor.recv_multipart()
            raise errors.PermissionDenied("the broker at %s refused this client's CURVE key (not on its allow-list)"
                                          % self.broker)

    def _run_until(self, condition, timeout, what):
        """Does I/O until ``condition()`` holds: Timeout after ``timeout``
        seconds (None: no limit), Unavailable once the broker has been
        silent for ``self.timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not condition():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                if what is None:
                    return
                raise errors.Timeout(what)
            if now - self._last_pong > self.timeout:
                raise errors.Unavailable("no answer from the broker at %s for %s s" % (self.broker, self.timeout))
            wait = 0.1 if deadline is None else min(0.1, deadline - now)
            self._pump(wait)

    def _pump(self, wait):
        """Handles what has come, waiting up to ``wait`` seconds for it."""
        now = time.monotonic()
        if now - self._last_ping >= _PING_INTERVAL:
            self._last_ping = now
            try:
                self._send(protocol.encode("ping", req=self._next_req()))
            except errors.Unavailable:
                pass
        self._check_refused()
        ready = dict(self._poller().poll(int(max(0.0, wait) * 1000)))
        if self._dealer in ready:
            self._drain_dealer()
        if self._sub in ready:
            while True:
                try:
                    frames = self._sub.recv_multipart(flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._on_event(frames)

    def _drain_dealer(self):
        """Handles every message waiting; True if a pong was among them."""
        pong = False
        while True:
            try:
                frames = self._dealer.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return pong
            try:
                header = protocol.decode(frames[0].buffer)
            except protocol.ProtocolError:
                continue
            data = frames[1].bytes if len(frames) > 1 else None
            kind = header.get("type")
            req = header.get("req", 0)
            if kind == "pong":
                pong = True
                self._on_pong(header)
            if kind == "result":
                self._on_result(header, data)
            if kind == "error" and header.get("code") == 12 and "session %s " % self._session in header.get("message", ""):
                self._session_taken = True
            job = self._resubmitted.pop(req, None) if kind in ("accepted", "error") else None
            if job is not None:
                self._on_resubmit_reply(job, header)
            elif req in self._replies and self._replies[req] is None:
                self._replies[req] = (header, data)

    def _on_pong(self, header):
        self._last_pong = time.monotonic()
        self.pong = header
        instance = header.get("instance", "")
        if not instance or instance == self._instance:
            return
        restarted = bool(self._instance)
        self._instance = instance
        if restarted:
            self._resubmit()

    def _resubmit(self):
        """The broker restarted: every unfinished job is submitted again
        under its key (a durable broker answers with the same job, and its
        result if it has finished; one without a journal runs it anew)."""
        for job in list(self._jobs.values()):
            if job._final is not None:
                continue
            req = self._next_req()
            try:
                self._send(protocol.encode("submit", req=req, **job._request), job._payload)
            except errors.Unavailable:
                continue  # gone again: the next pong from a new instance retries
            self._resubmitted[req] = job

    def _on_resubmit_reply(self, job, header):
        if header.get("type") == "accepted":
            new_id = header.get("job", job.id)
            if new_id != job.id:  # a broker without a journal: a new job
                self._jobs.pop(job.id, None)
                job.id = new_id
                self._jobs[new_id] = job
                if not new_id.startswith(self._session):
                    self._sub.setsockopt_string(zmq.SUBSCRIBE, new_id)
                self._take_early(job)
            return
        error = errors.from_reply(header)
        if error.retryable:
            return  # the next ping's pong, or the broker's own retry, brings it
        job._final = {"state": "failed", "code": error.code, "message": str(error.message)}
        job.state = "failed"
        self._jobs.pop(job.id, None)

    def _take_early(self, job):
        for event in self._early_events.pop(job.id, []):
            job._publish(event)
        early = self._early.pop(job.id, None)
        if early is not None:
            self._on_result(*early)

    def _on_result(self, header, data):
        job_id = header.get("job", "")
        job = self._jobs.get(job_id)
        if job is None:
            if job_id in self._finished:
                self.ack(job_id)  # a copy, after a restart
            elif len(self._early) < 1024:
                # Right behind its `accepted` (a finished job named by its
                # key): kept until submit() has made its Job.
                self._early[job_id] = (header, data)
            return
        job._final = header
        job._data = data
        job.state = header.get("state", "failed")
        job.stats = header.get("stats", {}) or {}
        job.output = header.get("output", "")
        # The final event may come after the result (another socket): the
        # callbacks see the final state now, from the result.
        job._publish(Event(job_id, job.state, 0, 0, 0, job.stats.get("group", ""), 0, header.get("code", 0),
                           header.get("message", ""), header.get("name", ""), time.time()))
        del self._jobs[job_id]
        self._finished[job_id] = None
        if len(self._finished) > _FINISHED_KEPT:
            self._finished.pop(next(iter(self._finished)))

    def _on_event(self, frames):
        if len(frames) != 2:
            return
        try:
            header = protocol.decode(frames[1])
        except protocol.ProtocolError:
            return
        if header.get("type") != "event":
            return
        state = header.get("job", {})
        event = _event(state, header.get("time", 0.0))
        job = self._jobs.get(event.job)
        if job is not None:
            job._publish(event)
        elif event.job.startswith(self._session) and event.job not in self._finished and \
                (event.job in self._early_events or len(self._early_events) < 1024):
            # Ahead of its Job (it was queued before `accepted` was read).
            self._early_events.setdefault(event.job, []).append(event)


def _pong(h):
    groups = [Group(g.get("name", ""), g.get("ranks", 0), g.get("slots", 0), g.get("running", 0),
                    g.get("idle_seconds", 0.0)) for g in h.get("group_list", []) or []]
    return Pong(h.get("groups", 0), h.get("idle", 0), h.get("busy", 0), h.get("ranks", 0), h.get("queued", 0),
                h.get("running", 0), h.get("version", ""), h.get("instance", ""), h.get("max_image_bytes", 0),
                bool(h.get("durable")), h.get("progress", ""), groups, h.get("journal", ""), h.get("protocol", ""))


def _event(state, when=0.0):
    return Event(state.get("job", ""), state.get("state", ""), state.get("done", 0), state.get("total", 0),
                 state.get("position", 0), state.get("group", ""), state.get("attempts", 0), state.get("code", 0),
                 state.get("message", ""), state.get("name", ""), when)


def _read_image(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise errors.NotFound("%s: no such file" % path) from None
    except IsADirectoryError:
        raise errors.InvalidArgument("%s is a folder; give a file (or use map)" % path) from None
    except OSError as e:
        raise errors.IoError("%s: %s" % (path, e.strerror or e)) from None


def _expand(inputs, out, format):
    """(source, target or None, problem or None) for each input, lazily."""
    claimed = set()

    def target_for(relative):
        if out is None:
            return None
        target = os.path.join(os.fspath(out), relative)
        if format:
            target = os.path.splitext(target)[0] + "." + format
        return target

    def one(source, relative):
        target = target_for(relative)
        if target is not None:
            normal = os.path.normpath(target)
            if normal in claimed:
                return source, None, errors.InvalidArgument(
                    "%s: its output %s would overwrite the result of an earlier input" % (source, target))
            claimed.add(normal)
        return source, target, None

    if isinstance(inputs, (str, bytes, os.PathLike)):
        inputs = [os.fspath(inputs)]
    for given in inputs:
        given = os.fspath(given)
        if os.path.isdir(given):
            found = []
            for folder, dirs, files in os.walk(given):
                dirs.sort()
                for name in files:
                    if os.path.splitext(name)[1][1:].lower() in protocol.IMAGE_EXTENSIONS:
                        found.append(os.path.join(folder, name))
            for source in sorted(found):
                yield one(source, os.path.relpath(source, given))
        elif os.path.exists(given):
            yield one(given, os.path.basename(given))
        else:
            yield given, None, errors.NotFound("%s: no such file or folder" % given)
