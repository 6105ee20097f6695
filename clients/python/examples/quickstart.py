#!/usr/bin/env python3
"""The Python client in a few lines: one image with its progress, then a
folder with map. Run from the repository, with a broker up:

    python3 clients/python/examples/quickstart.py IMAGE FOLDER OUT [BROKER [PROGRESS]]
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # from the checkout

from imgq import Client, JobFailed  # noqa: E402

image, folder, out = sys.argv[1:4]
broker = sys.argv[4] if len(sys.argv) > 4 else "tcp://127.0.0.1:5555"
progress = sys.argv[5] if len(sys.argv) > 5 else None

with Client(broker, progress=progress) as c:
    job = c.submit(image, ops=["grayscale", "gaussian_blur:ksize=5"], priority=5)
    job.on_progress(lambda ev: print("  %s: %s" % (job.name, ev.state)))
    try:
        png = job.result(timeout=60)
        print("%s: %d bytes of PNG (%s)" % (image, len(png), job.stats.get("group")))
    except JobFailed as e:
        print("%s failed: %s" % (image, e))
    done = failed = 0
    for o in c.map(folder, ops=["to_8bit", "canny:low=50,high=150"], out=out, window=8, format="png"):
        done, failed = done + o.ok, failed + (not o.ok)
        if not o.ok:
            print("  %s: %s" % (o.path, o.error))
    print("map: %d written to %s, %d failed" % (done, out, failed))
