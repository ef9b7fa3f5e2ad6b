"""A CloudEvent sink for the e2e tests (see ../functions.py)."""

import fcntl
import json
import os
from pathlib import Path


def handle(cloud_event):  # type: ignore[no-untyped-def]
    path = Path(os.environ["CODITECT_DATA_DIR"]) / "e2e-sink.jsonl"
    data = cloud_event.data if isinstance(cloud_event.data, dict) else {}
    with path.open("a+") as log:
        fcntl.flock(log, fcntl.LOCK_EX)
        log.seek(0)
        earlier = sum(1 for line in log if json.loads(line)["id"] == cloud_event["id"])
        log.write(json.dumps({"id": cloud_event["id"], "type": cloud_event["type"], "data": data}) + "\n")
    if data.get("always_fail") or earlier < int(data.get("fail_first", 0)):
        raise RuntimeError("e2e_sink: failing on purpose")
    return "ok"
