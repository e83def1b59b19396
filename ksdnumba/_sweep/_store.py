"""Finished fits on disk: one small ``.npz`` file per fit, written atomically.

A file is named by the fit's key (a hash of its configuration), so a rerun of the
same sweep finds it and skips the fit. It holds the configuration and the scalars
of the record as JSON, and the arrays as they are; it is read with
``allow_pickle=False``: loading a directory never runs code.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from .._result import SamplingResult

FORMAT = 1
_RESULT_ARRAYS = ("x", "history", "trajectory", "times")
_RESULT_SCALARS = ("fun", "nit", "nfev", "success", "status", "message")
_RESULT_ORDER = (
    "x",
    "fun",
    "nit",
    "nfev",
    "success",
    "status",
    "message",
    "history",
    "trajectory",
    "times",
)
_KEEP_RANK = {"none": 0, "x": 1, "all": 2}


class Store:
    """The directory of a sweep's finished fits."""

    def __init__(self, directory):
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise NotADirectoryError(f"directory {str(self.directory)!r} is a file")
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.directory / f"fit-{key}.npz"

    def save(self, key: str, config: dict, record: dict, keep: str, target_digest: str) -> None:
        """Write the record of a finished fit: to a temporary file, then renamed into place.

        A crash during the write leaves at most a ``.tmp`` file, which the sweep
        ignores; the rename makes the file appear whole or not at all.
        """
        meta = {
            "format": FORMAT,
            "key": key,
            "config": config,
            "keep": keep,
            "target_digest": target_digest,
            "record": {k: v for k, v in record.items() if k not in ("x", "result")},
        }
        arrays = {"meta": np.array(json.dumps(meta))}
        if record.get("x") is not None:
            arrays["x"] = record["x"]
        result = record.get("result")
        if result is not None:
            meta["result"] = {k: result[k] for k in _RESULT_SCALARS}
            arrays["meta"] = np.array(json.dumps(meta))
            for name in _RESULT_ARRAYS:
                if result[name] is not None:
                    arrays[f"result.{name}"] = result[name]
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        tmp = self.directory / f".fit-{key}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path(key))
        finally:
            if tmp.exists():
                tmp.unlink()

    def load(self, key: str, keep: str):
        """The stored ``(record, target_digest)`` of a fit, or None.

        None when there is no file, when it cannot be read (it is then
        recomputed), or when it keeps less than ``keep`` asks for.
        """
        path = self.path(key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("format") != FORMAT or meta.get("key") != key:
                    return None
                if _KEEP_RANK[meta["keep"]] < _KEEP_RANK[keep]:
                    return None
                record = dict(meta["record"])
                record["x"] = data["x"] if keep != "none" and "x" in data else None
                record["result"] = None
                if keep == "all" and "result" in meta:
                    fields = dict(meta["result"])
                    for name in _RESULT_ARRAYS:
                        entry = f"result.{name}"
                        fields[name] = data[entry] if entry in data else None
                    record["result"] = SamplingResult(**{k: fields[k] for k in _RESULT_ORDER})
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return None
        return record, meta.get("target_digest")
