"""Read back what an offline W&B run wrote: the records of its run-<id>.wandb transaction log.

The file is a LevelDB-style log: a 7-byte header (':W&B', magic 0xBEE1, version 0), then 32 KiB
blocks of chunks, each with a 7-byte header (crc32 4 bytes, length 2 bytes LE, type 1 byte:
1 full, 2 first, 3 middle, 4 last); a block's tail shorter than a header is padding. Each whole
record is a serialized `wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7


def read_records(path: Path) -> list:
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B transaction log")
    records, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:
            pos += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if pos + HEADER + length > len(data):  # a chunk still being written: read up to here
            break
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:  # zero padding at the end of the file
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            try:
                record.ParseFromString(pending)
            except DecodeError:  # bytes not yet flushed in full: the caller polls again
                break
            records.append(record)
    return records


def finished_records(path: Path, timeout: float = 30.0) -> list:
    """The records once the log ends with the run's `exit` record: wandb's core process may still be
    writing the file for a moment after `finish()` returns."""
    deadline = time.monotonic() + timeout
    while True:
        records = read_records(path) if Path(path).stat().st_size > HEADER else []
        if (records and records[-1].WhichOneof("record_type") == "exit") or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def offline_run(folder: Path) -> dict:
    """{run, config, history, summary, artifacts} of the single offline run under folder/wandb/."""
    logs = sorted(Path(folder).glob("wandb/offline-run-*/run-*.wandb"))
    if len(logs) != 1:
        raise AssertionError(f"expected one offline W&B run under {folder}/wandb, found {len(logs)}")
    out = {"run": None, "config": {}, "history": [], "summary": {}, "artifacts": []}
    for record in finished_records(logs[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = record.run
            out["config"].update({u.key: json.loads(u.value_json) for u in record.run.config.update})
        elif kind == "config":
            out["config"].update({u.key: json.loads(u.value_json) for u in record.config.update})
        elif kind == "history":
            out["history"].append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                   for item in record.history.item})
        elif kind == "summary":
            out["summary"].update({u.key or "/".join(u.nested_key): json.loads(u.value_json) for u in record.summary.update})
        elif kind == "artifact":
            out["artifacts"].append(record.artifact)
    return out
