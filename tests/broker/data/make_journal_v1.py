#!/usr/bin/env python3
"""Makes tests/broker/data/journal-v1: a data dir written by the broker of
commit 157fd7d (before the job record, when "running" was not stored), in
every state a job can be in when the broker dies, for the test that today's
broker restores it (Durable.AJournalOfTheEarlierFormatIsRestored).

Run once, by hand, from a build of that commit (the clients and the group are
today's; only the broker writes the journal):

  git worktree add /tmp/oldmain 157fd7d
  cmake -S /tmp/oldmain -B /tmp/oldmain/build -DCMAKE_BUILD_TYPE=Release
  cmake --build /tmp/oldmain/build --target imgq-broker
  PYTHONPATH=clients/python python3 tests/broker/data/make_journal_v1.py \
      --old-broker /tmp/oldmain/build/bin/imgq-broker --worker build/bin/imgq-worker

It writes journal-v1/data (the broker's files, its WAL checkpointed into
journal.db) and journal-v1/jobs.tsv: a line per job with its id, its role,
its input (a sample image's name), its state as the client last heard it,
its key, its format and its ops.
"""
import argparse
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq

import imgq

SAMPLES = "/usr/share/doc/opencv-doc/examples/data"
HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    sys.exit("timed out waiting for " + what)


class HoldingGroup:
    """A worker group leader that takes one job (slots 1) and never ends it:
    the job is running when the broker dies."""

    def __init__(self, endpoint):
        self.context = zmq.Context()
        self.dealer = self.context.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(endpoint)
        self.send("hello", name="holder", ranks=1, slots=1, version="fixture")
        self.held = []

    def send(self, kind, **fields):
        self.dealer.send(msgpack.packb(dict(sig="IMGQ", ver=1, type=kind, **fields)))

    def pump(self):
        while self.dealer.poll(10):
            frames = self.dealer.recv_multipart()
            header = msgpack.unpackb(frames[0])
            if header.get("type") == "job":
                self.held.append(header["job"])
        self.send("heartbeat")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old-broker", required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--mpiexec", default="mpiexec")
    parser.add_argument("--out", default=os.path.join(HERE, "journal-v1"))
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="imgq_journal_v1_")
    data = os.path.join(work, "data")
    ports = {name: free_port() for name in ("clients", "workers", "progress")}
    endpoint = {name: "tcp://127.0.0.1:%d" % port for name, port in ports.items()}
    broker = subprocess.Popen([args.old_broker, "--data-dir", data, "--metrics", "", "--heartbeat-ms", "1000",
                               "--clients", endpoint["clients"], "--workers", endpoint["workers"],
                               "--progress", endpoint["progress"]])
    group = None
    jobs = []

    def record(job_id, role, sample, ops, fmt, state, key=""):
        jobs.append(dict(id=job_id, role=role, sample=sample, ops=list(ops), format=fmt, state=state, key=key))

    try:
        client = imgq.Client(endpoint["clients"], timeout=30)
        # A real group runs the jobs that finish.
        group = subprocess.Popen([args.mpiexec, "-n", "1", args.worker, "--broker", endpoint["workers"],
                                  "--name", "real"], start_new_session=True)
        wait_until("the group", lambda: client.ping().groups == 1)
        finished = [
            ("kept_inline", "smarties.png", ["grayscale"], "png", ""),           # result under 256 KiB: in the row
            ("kept_file", "starry_night.jpg", ["invert"], "jpg", "kept-file"),   # result over 256 KiB: payloads/
            ("acknowledged", "baboon.jpg", ["flip:axis=h"], "jpg", "acked"),     # fetched and acknowledged
        ]
        for role, sample, ops, fmt, key in finished:
            job = client.submit(os.path.join(SAMPLES, sample), ops, format=fmt, key=key or None)
            job.wait(timeout=60)
            if role == "acknowledged":
                job.result(timeout=60)  # fetches and acknowledges
            record(job.id, role, sample, ops, fmt, "done", key)
        # A job given 1 ms to run: the group stops it (deadline_exceeded).
        ops = ["gaussian_blur:ksize=255", "gaussian_blur:ksize=255"]
        job = client.submit(os.path.join(SAMPLES, "home.jpg"), ops, format="png", job_timeout=0.001)
        job.wait(timeout=60)
        record(job.id, "failed", "home.jpg", ops, "png", job.state)
        group.send_signal(signal.SIGTERM)  # returns nothing: it has no jobs
        group.wait(timeout=30)
        group = None
        wait_until("the group to leave", lambda: client.ping().groups == 0)

        # A group that holds the first job it gets; the rest stay queued.
        holder = HoldingGroup(endpoint["workers"])
        wait_until("the holding group", lambda: client.ping().groups == 1)
        job = client.submit(os.path.join(SAMPLES, "fruits.jpg"), ["gaussian_blur:ksize=5"], format="png",
                            priority=9, key="held")
        wait_until("the held job", lambda: (holder.pump(), job.id in holder.held)[1])
        record(job.id, "running", "fruits.jpg", ["gaussian_blur:ksize=5"], "png", "running", "held")
        queued = [
            ("queued_inline", "messi5.jpg", ["sobel"], "png", ""),
            ("queued_file", "leuvenA.jpg", ["resize:width=320,height=240"], "jpg", "big-input"),  # image in payloads/
            ("queued_low", "pic1.png", ["median_blur:ksize=3", "invert"], "png", ""),
        ]
        for role, sample, ops, fmt, key in queued:
            job = client.submit(os.path.join(SAMPLES, sample), ops, format=fmt, key=key or None, priority=1)
            record(job.id, role, sample, ops, fmt, "queued", key)
            holder.pump()
        job = client.submit(os.path.join(SAMPLES, "ela_original.jpg"), ["invert"], format="png", priority=1)
        client.cancel(job.id)
        record(job.id, "cancelled", "ela_original.jpg", ["invert"], "png", "cancelled")
        holder.pump()
        client.close()
        # Accepted means stored; a dispatch or an end is recorded within 50 ms
        # (the commit policy's lazy delay): wait that out, then kill it.
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            holder.pump()
        broker.send_signal(signal.SIGKILL)
        broker.wait()
    finally:
        if group is not None:
            os.killpg(group.pid, signal.SIGKILL)
        if broker.poll() is None:
            broker.kill()

    database = sqlite3.connect(os.path.join(data, "journal.db"))
    database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    database.close()
    for leftover in ("journal.db-wal", "journal.db-shm", "LOCK"):
        if os.path.exists(os.path.join(data, leftover)):
            os.remove(os.path.join(data, leftover))
    shutil.rmtree(args.out, ignore_errors=True)
    shutil.copytree(data, os.path.join(args.out, "data"))
    with open(os.path.join(args.out, "jobs.tsv"), "w") as f:
        f.write("# written by imgq-broker 157fd7d (tests/broker/data/make_journal_v1.py)\n")
        f.write("# id\trole\tsample\tstate\tkey\tformat\tops...\n")
        for j in jobs:
            f.write("\t".join([j["id"], j["role"], j["sample"], j["state"], j["key"] or "-", j["format"]] + j["ops"]))
            f.write("\n")
    shutil.rmtree(work)
    for j in jobs:
        print(j["id"], j["role"], j["state"])


if __name__ == "__main__":
    main()
