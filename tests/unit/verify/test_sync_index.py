"""Sync fetches only the status lists whose digest in the index differs from the held copy."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from verify.sync import _Fetcher, _held_digest, _index


def test_index_digests_are_read_and_malformed_ones_ignored(tmp_path: Path) -> None:
    (tmp_path / "status").mkdir()
    (tmp_path / "status" / "index.json").write_text(json.dumps(
        {"lists": [1, 0], "sha256": {"0": "a" * 64, "1": "short"}}
    ))
    assert _index(_Fetcher(tmp_path)) == {0: "a" * 64, 1: None}


def test_an_index_without_digests_still_lists_every_shard(tmp_path: Path) -> None:
    (tmp_path / "status").mkdir()
    (tmp_path / "status" / "index.json").write_text(json.dumps({"lists": [3]}))
    assert _index(_Fetcher(tmp_path)) == {3: None}


def test_the_held_digest_is_the_held_files(tmp_path: Path) -> None:
    assert _held_digest(tmp_path, 0) is None
    (tmp_path / "status").mkdir()
    (tmp_path / "status" / "0").write_bytes(b"signed list")
    assert _held_digest(tmp_path, 0) == hashlib.sha256(b"signed list").hexdigest()
