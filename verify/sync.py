"""Keeping a terminal's trust directory current: fetch, verify, and only then replace.

The source is the agency's public area, over HTTP(S) (`http://host:8000`, meaning
`http://host:8000/public`) or as a directory (`<instance>/public`), laid out as

    trust-list            the signed trust list
    status/index.json     {"lists": [0, 1, ...], "sha256": {"0": ...}}: the shards published
                          and each signed list's SHA-256 (not signed: a list
                          left out only goes stale at the terminal, it never turns valid)
    status/<n>            the signed status list of shard n

Rules `sync` keeps (the target layout is `verify.trust`'s):

1. the target holds the pinned root (`init_terminal`); nothing else is trusted from the source;
2. the trust list is verified against the pinned root before anything is replaced: a bad,
   stale or rolled-back one (lower sequence; or the same sequence with other bytes) aborts the
   whole sync and leaves the directory exactly as it was;
3. each status list is verified with a STATUS_LIST signer of the NEW trust list, must carry
   the URI of its shard, and must not be older than the copy held; a list that fails keeps the
   held copy and is reported (`SyncReport.refused`), the others still update;
4. every file is replaced by an atomic rename (readers see the old file or the new one), the
   trust list first, then the status lists, then `state.json` (the sequence numbers and issue
   times that rollback checks compare with);
5. fetching is bounded: http and https only, a timeout, and size caps.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from cardsys.errors import ConfigError, TrustListError, VerificationError
from cardsys.formats.trustlist import parse_trust_list
from verify.trust import (
    MAX_FILE,
    ROOT_FILE,
    STATE_FILE,
    STATUS_DIR,
    TRUST_LIST_FILE,
    TerminalPolicy,
    TrustStore,
    list_number,
    read_root,
)

__all__ = ["SyncError", "SyncReport", "init_terminal", "sync"]

INDEX: Final = "status/index.json"
_TIMEOUT: Final = 15.0
_MAX_INDEX: Final = 64 * 1024
_MAX_LISTS: Final = 4096


class SyncError(TrustListError):
    """The source could not be read (network, missing file, bad index)."""

    code = "sync_failed"


@dataclass(frozen=True)
class SyncReport:
    """What one sync did."""

    trust_list_sequence: int
    trust_list_updated: bool
    updated: tuple[int, ...] = ()
    unchanged: tuple[int, ...] = ()
    #: Shards whose new list was refused (the held copy stays), with the reason.
    refused: tuple[tuple[int, str], ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "trust_list_sequence": self.trust_list_sequence,
            "trust_list_updated": self.trust_list_updated,
            "updated": list(self.updated),
            "unchanged": list(self.unchanged),
            "refused": [{"list": n, "reason": reason} for n, reason in self.refused],
        }


def init_terminal(root_pem: bytes, directory: Path) -> x509.Certificate:
    """Pin the root certificate in a new terminal directory (done once per terminal).

    Raises:
        TrustListError: not a self-signed CA certificate, or a different root is already
            pinned there (re-pinning is a deliberate act: remove the directory first).
    """
    try:
        root = x509.load_pem_x509_certificate(root_pem)
    except ValueError:
        raise TrustListError("the root file is not a PEM certificate") from None
    try:
        constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if root.issuer != root.subject or constraints is None or not constraints.ca:
        raise TrustListError("the pinned certificate must be a self-signed CA (the root)")
    directory = Path(directory)
    pinned = directory / ROOT_FILE
    pem = root.public_bytes(Encoding.PEM)
    if pinned.exists():
        if read_root(directory).public_bytes(Encoding.PEM) != pem:
            raise TrustListError(f"{pinned} already pins another root")
        return root
    (directory / STATUS_DIR).mkdir(parents=True, exist_ok=True)
    _write_atomic(pinned, pem)
    return root


def sync(
    source: str | Path,
    target: Path,
    *,
    now: datetime,
    policy: TerminalPolicy | None = None,
) -> SyncReport:
    """Fetch and verify the trust list and status lists, then replace the held copies.

    Raises:
        SyncError: the source cannot be read.
        TrustListError (and its subclasses RollbackError ...), StaleTrustError: the trust list
            is refused; nothing was changed.
    """
    policy = policy or TerminalPolicy()
    target = Path(target)
    root = read_root(target)
    state = _read_state(target)
    fetch = _Fetcher(source)
    document = fetch.get(TRUST_LIST_FILE, MAX_FILE)
    held_sha256 = state.get("trust_list_sha256")
    held_digest = bytes.fromhex(held_sha256) if held_sha256 else None
    trust_list = parse_trust_list(
        document,
        root=root,
        now=now,
        previous_sequence=state.get("trust_list_sequence"),
        grace=policy.trust_list_grace,
        previous_digest=held_digest,
    )
    store = TrustStore.build(trust_list, (), now=now, policy=policy)
    candidates = _status_lists(fetch, store, state, target, now)
    trust_updated = trust_list.digest != held_digest
    if trust_updated:
        _write_atomic(target / TRUST_LIST_FILE, document)
    held: dict[str, int] = dict(state.get("status", {}))
    updated, unchanged, refused = [], list(candidates.unchanged), list(candidates.refused)
    for number, (token, issued) in sorted(candidates.accepted.items()):
        previous = held.get(str(number))
        if previous == issued and (target / STATUS_DIR / str(number)).is_file():
            unchanged.append(number)
            continue
        _write_atomic(target / STATUS_DIR / str(number), token)
        held[str(number)] = issued
        updated.append(number)
    _write_state(target, {
        "trust_list_sequence": trust_list.sequence,
        "trust_list_sha256": trust_list.digest.hex(),
        "status": held,
        "synced_at": now.astimezone(UTC).isoformat(),
    })
    return SyncReport(trust_list.sequence, trust_updated, tuple(updated),
                      tuple(sorted(unchanged)), tuple(refused))


@dataclass
class _Candidates:
    accepted: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    refused: list[tuple[int, str]] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)


def _status_lists(
    fetch: _Fetcher, store: TrustStore, state: dict[str, Any], target: Path, now: datetime
) -> _Candidates:
    """Every listed shard's token that verifies and is not older than the held one; shards
    whose held copy the index names by digest are not fetched again."""
    found = _Candidates()
    held: dict[str, int] = state.get("status", {})
    for number, digest in _index(fetch).items():
        if digest is not None and _held_digest(target, number) == digest:
            found.unchanged.append(number)  # the terminal holds exactly this signed list
            continue
        try:
            token = fetch.get(f"{STATUS_DIR}/{number}", MAX_FILE)
            parsed = store.verify_status_list(token, now=now)
        except (VerificationError, SyncError) as exc:
            found.refused.append((number, f"{exc.code}: {exc}"))
            continue
        issued = int(parsed.iat.timestamp())
        if list_number(parsed.uri) != number:
            found.refused.append((number, f"the list is for {parsed.uri}, not shard {number}"))
        elif issued < held.get(str(number), -1):
            found.refused.append((number, "older than the list held (rollback refused)"))
        else:
            found.accepted[number] = (token, issued)
    return found


def _index(fetch: _Fetcher) -> dict[int, str | None]:
    """The shards the source publishes, with the SHA-256 of each signed list when given."""
    data = fetch.get(INDEX, _MAX_INDEX)
    try:
        document = json.loads(data)
        numbers = document["lists"]
        digests = document.get("sha256", {})
        if not isinstance(numbers, list) or len(numbers) > _MAX_LISTS:
            raise ValueError("lists")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
            raise ValueError("list numbers")
        if not isinstance(digests, dict):
            raise ValueError("sha256")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SyncError(f"the status list index is malformed ({exc})") from None
    found: dict[int, str | None] = {}
    for number in sorted(set(numbers)):
        digest = digests.get(str(number))
        found[number] = digest if isinstance(digest, str) and len(digest) == 64 else None
    return found


def _held_digest(target: Path, number: int) -> str | None:
    """SHA-256 of the list the terminal holds for a shard (None when it holds none)."""
    try:
        return hashlib.sha256((target / STATUS_DIR / str(number)).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


class _Fetcher:
    """Reads files of the source: a directory, or an http(s) base URL."""

    def __init__(self, source: str | Path) -> None:
        text = str(source)
        parsed = urllib.parse.urlsplit(text)
        if parsed.scheme in ("http", "https"):
            path = parsed.path.rstrip("/") or "/public"
            self.base: str | None = urllib.parse.urlunsplit(
                (parsed.scheme, parsed.netloc, path + "/", "", "")
            )
            self.directory: Path | None = None
        elif "://" in text and parsed.scheme != "file":
            raise ConfigError(f"sync source must be an http(s) URL or a directory, not {text!r}")
        else:
            self.base = None
            self.directory = Path(parsed.path if parsed.scheme == "file" else text)
            if not self.directory.is_dir():
                raise SyncError(f"no such source directory: {self.directory}")

    def get(self, name: str, limit: int) -> bytes:
        if self.directory is not None:
            return self._file(self.directory / name, limit)
        assert self.base is not None
        url = urllib.parse.urljoin(self.base, name)
        # The base URL was checked to be http(s) in __init__, and redirects are checked below.
        request = urllib.request.Request(url, headers={"User-Agent": "cardsys-terminal"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:  # noqa: S310
                if urllib.parse.urlsplit(response.geturl()).scheme not in ("http", "https"):
                    raise SyncError(f"{url} redirected outside http(s)")
                data: bytes = response.read(limit + 1)
        except urllib.error.HTTPError as exc:
            raise SyncError(f"{url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise SyncError(f"cannot fetch {url}: {exc}") from None
        if len(data) > limit:
            raise SyncError(f"{url} is larger than {limit} bytes")
        return data

    @staticmethod
    def _file(path: Path, limit: int) -> bytes:
        try:
            with path.open("rb") as handle:
                data = handle.read(limit + 1)
        except OSError as exc:
            raise SyncError(f"cannot read {path}: {exc.strerror}") from None
        if len(data) > limit:
            raise SyncError(f"{path} is larger than {limit} bytes")
        return data


def _read_state(target: Path) -> dict[str, Any]:
    path = target / STATE_FILE
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        # A damaged state file would silently disable rollback protection: refuse instead.
        raise TrustListError(f"{path} is unreadable ({exc}); restore it or re-initialise") from None
    if not isinstance(state, dict):
        raise TrustListError(f"{path} is not a sync state")
    return state


def _write_state(target: Path, state: dict[str, Any]) -> None:
    _write_atomic(target / STATE_FILE, json.dumps(state, indent=1, sort_keys=True).encode())


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
