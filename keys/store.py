"""Key stores: where private keys live, behind one interface, picked from settings in one place.

A `KeyStore` generates key pairs, hands out their public keys and signs with them; the private
key never leaves it through this interface. `KeyStore.signer(ref, certificate)` binds a key to
its certificate and returns the `cardsys.pki.Signer` the rest of the system signs with.

Rules every store keeps:

* a key reference (`KeyRef`) is a short lowercase slug with a random suffix: it names a file or
  an HSM object, so it is validated on every use (no path tricks, no label collisions);
* every signature is verified with the key's public key before it is returned, so a faulty HSM
  or a corrupted key never lets a bad signature out of the system;
* nothing secret (passphrase, PIN, key bytes) is logged, formatted into an error or a repr.

`open_key_store(settings)` is the one place that turns settings into a store.
"""

from __future__ import annotations

import abc
import enum
import logging
import os
import re
import secrets
import stat
from pathlib import Path
from types import TracebackType
from typing import ClassVar, NewType, Self

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cardsys.config import KeyStoreKind, Settings
from cardsys.errors import CertificateError, KeyStoreError, NotFoundError
from cardsys.pki import Algorithm, algorithm_for_key, hash_for, kid
from keys import pkcs8
from keys.pkcs8 import decrypt_private_key, encrypt_private_key

log = logging.getLogger(__name__)

#: A key's name inside its store (file stem, PKCS#11 CKA_LABEL and CKA_ID).
KeyRef = NewType("KeyRef", str)

_REF = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class Curve(enum.StrEnum):
    """The curves cardsys keys use: P-384 for the root, P-256 for signers."""

    P256 = "P-256"
    P384 = "P-384"

    @property
    def ec_curve(self) -> ec.EllipticCurve:
        return ec.SECP256R1() if self is Curve.P256 else ec.SECP384R1()

    @property
    def algorithm(self) -> Algorithm:
        return Algorithm.ES256 if self is Curve.P256 else Algorithm.ES384


def new_ref(label: str) -> KeyRef:
    """A fresh key reference: the label as a slug plus 48 random bits."""
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40] or "key"
    return checked_ref(f"{slug}-{secrets.token_hex(6)}")


def checked_ref(ref: str) -> KeyRef:
    """`ref` as a `KeyRef` when it has the allowed form.

    Raises:
        KeyStoreError: anything else (it could name a path or another object).
    """
    if not _REF.fullmatch(ref):
        raise KeyStoreError(f"invalid key reference {ref[:70]!r}")
    return KeyRef(ref)


class KeyStore(abc.ABC):
    """A place private keys live in. Subclasses implement the four primitives below."""

    kind: ClassVar[KeyStoreKind]

    @abc.abstractmethod
    def generate(self, label: str, curve: Curve) -> KeyRef:
        """Create a key pair inside the store; return its new reference."""

    @abc.abstractmethod
    def public_key(self, ref: KeyRef) -> ec.EllipticCurvePublicKey:
        """The public half of a stored key.

        Raises:
            NotFoundError: no key with that reference.
        """

    @abc.abstractmethod
    def contains(self, ref: KeyRef) -> bool:
        """Whether the store holds a key with that reference."""

    @abc.abstractmethod
    def _sign_unchecked(self, ref: KeyRef, data: bytes, algorithm: Algorithm) -> bytes:
        """A DER ECDSA signature over `data` hashed with `algorithm`'s hash (not yet verified)."""

    def close(self) -> None:  # noqa: B027 (optional hook: stores without resources keep it)
        """Release sessions and forget cached keys."""

    def sign(self, ref: KeyRef, data: bytes) -> bytes:
        """A DER ECDSA signature over `data`, verified with the public key before it is returned.

        Raises:
            KeyStoreError: the store produced a signature that does not verify.
        """
        public_key = self.public_key(ref)
        algorithm = algorithm_for_key(public_key)
        signature = self._sign_unchecked(ref, data, algorithm)
        try:
            public_key.verify(signature, data, ec.ECDSA(hash_for(algorithm)))
        except InvalidSignature as exc:
            raise KeyStoreError(f"key {ref} produced a signature that does not verify") from exc
        return signature

    def signer(self, ref: KeyRef, certificate: x509.Certificate) -> StoreSigner:
        """The `Signer` for a stored key and its certificate.

        Raises:
            CertificateError: the certificate is for another key.
            NotFoundError: no key with that reference.
        """
        if _spki(certificate.public_key()) != _spki(self.public_key(ref)):
            raise CertificateError(
                f"certificate {kid(certificate).hex()} does not belong to key {ref}"
            )
        return StoreSigner(self, ref, certificate)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class StoreSigner:
    """A stored key bound to its certificate: the `cardsys.pki.Signer` the system signs with."""

    __slots__ = ("_algorithm", "_certificate", "_kid", "_ref", "_store")

    def __init__(self, store: KeyStore, ref: KeyRef, certificate: x509.Certificate) -> None:
        self._store = store
        self._ref = ref
        self._certificate = certificate
        self._kid = kid(certificate)
        self._algorithm = algorithm_for_key(certificate.public_key())

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def kid(self) -> bytes:
        return self._kid

    @property
    def algorithm(self) -> Algorithm:
        return self._algorithm

    @property
    def ref(self) -> KeyRef:
        return self._ref

    def sign(self, data: bytes) -> bytes:
        """A DER ECDSA signature over `data`, verified before it is returned."""
        return self._store.sign(self._ref, data)

    def __repr__(self) -> str:
        return f"StoreSigner(ref={self._ref}, kid={self._kid.hex()})"


class FileKeyStore(KeyStore):
    """Keys as passphrase-encrypted PKCS#8 files (`<ref>.key.pem`, mode 0600) in one directory.

    A key is never written in the clear: it is encrypted in memory, written to a temporary
    file created 0600, synced and linked into place (an existing key is never overwritten).
    """

    kind = KeyStoreKind.FILE
    SUFFIX = ".key.pem"

    def __init__(
        self, directory: Path, passphrase: str, *, scrypt_log2_n: int | None = None
    ) -> None:
        """Open (creating it 0700 if needed) a key directory.

        `scrypt_log2_n` sets the cost of keys written from now on (default
        `keys.pkcs8.DEFAULT_LOG2_N`); reading accepts every cost in the allowed range.

        Raises:
            KeyStoreError: an empty passphrase, or the directory cannot be created.
        """
        if not passphrase:
            raise KeyStoreError(
                "no key passphrase: set CARDSYS_KEY_PASSPHRASE or a passphrase file"
            )
        self._directory = Path(directory)
        self._passphrase = passphrase.encode("utf-8")
        self._log2_n = pkcs8.DEFAULT_LOG2_N if scrypt_log2_n is None else scrypt_log2_n
        self._keys: dict[KeyRef, ec.EllipticCurvePrivateKey] = {}
        try:
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise KeyStoreError(f"cannot create key directory {self._directory}") from exc

    def __repr__(self) -> str:
        return f"FileKeyStore({str(self._directory)!r})"

    @property
    def directory(self) -> Path:
        return self._directory

    def path(self, ref: KeyRef) -> Path:
        """The file a key reference names."""
        return self._directory / f"{checked_ref(ref)}{self.SUFFIX}"

    def generate(self, label: str, curve: Curve) -> KeyRef:
        """Generate a key, write it encrypted, and read it back once to prove the file works."""
        ref = new_ref(label)
        key = ec.generate_private_key(curve.ec_curve)
        data = encrypt_private_key(key, self._passphrase, log2_n=self._log2_n)
        if _spki(decrypt_private_key(data, self._passphrase).public_key()) != _spki(
            key.public_key()
        ):
            raise KeyStoreError("the encrypted key does not decrypt to the generated key")
        _write_new_file(self.path(ref), data)
        self._keys[ref] = key
        log.info("generated %s key %s in %s", curve.value, ref, self._directory)
        return ref

    def contains(self, ref: KeyRef) -> bool:
        return self.path(ref).is_file()

    def public_key(self, ref: KeyRef) -> ec.EllipticCurvePublicKey:
        return self._private_key(ref).public_key()

    def _sign_unchecked(self, ref: KeyRef, data: bytes, algorithm: Algorithm) -> bytes:
        return self._private_key(ref).sign(data, ec.ECDSA(hash_for(algorithm)))

    def close(self) -> None:
        self._keys.clear()

    def _private_key(self, ref: KeyRef) -> ec.EllipticCurvePrivateKey:
        cached = self._keys.get(ref)
        if cached is not None:
            return cached
        data = _read_private_file(self.path(ref), what=f"key {ref}")
        key = decrypt_private_key(data, self._passphrase)
        self._keys[ref] = key
        return key


def read_passphrase(settings: Settings) -> str:
    """The file store's passphrase: `CARDSYS_KEY_PASSPHRASE` or the 0600 `key_passphrase_file`.

    Raises:
        KeyStoreError: neither is set, the file is missing, empty, or readable by others.
    """
    if settings.key_passphrase:
        return settings.key_passphrase
    if not settings.key_passphrase_file:
        raise KeyStoreError("no key passphrase: set CARDSYS_KEY_PASSPHRASE or key_passphrase_file")
    data = _read_private_file(Path(settings.key_passphrase_file), what="the passphrase file")
    try:
        passphrase = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise KeyStoreError("the passphrase file is not UTF-8 text") from exc
    if not passphrase:
        raise KeyStoreError("the passphrase file is empty")
    return passphrase


def create_passphrase_file(path: Path) -> bool:
    """Write a fresh random passphrase to `path` (0600) unless the file exists.

    For development instances only: a passphrase kept next to the keys protects nothing.
    Returns whether a file was created.
    """
    if path.exists() or path.is_symlink():
        return False
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        _write_new_file(path, secrets.token_urlsafe(32).encode("ascii") + b"\n")
    except KeyStoreError:
        return False  # created meanwhile by a concurrent run
    log.info("created the development key passphrase file %s", path)
    return True


def open_key_store(settings: Settings) -> KeyStore:
    """The key store the settings name (the only place that chooses a backend).

    Raises:
        KeyStoreError: the store cannot be opened (no passphrase, wrong PIN, missing token...).
    """
    if settings.key_store is KeyStoreKind.PKCS11:
        # Imported here: python-pkcs11 is an optional dependency, needed only with an HSM.
        from keys.pkcs11 import Pkcs11KeyStore

        return Pkcs11KeyStore(
            settings.pkcs11_module, settings.pkcs11_token_label, settings.pkcs11_pin
        )
    return FileKeyStore(settings.instance_path / "keys", read_passphrase(settings))


def _spki(key: ec.EllipticCurvePublicKey | object) -> bytes:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CertificateError("only ECDSA keys are supported")
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _read_private_file(path: Path, *, what: str) -> bytes:
    """Read a small secret file, refusing symlinks and group/world access."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError as exc:
        raise NotFoundError(f"{what} does not exist ({path})") from exc
    except OSError as exc:
        raise KeyStoreError(f"cannot open {what} ({path}): {exc.strerror}") from exc
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeyStoreError(f"{what} is not a regular file ({path})")
        if info.st_mode & 0o077:
            raise KeyStoreError(
                f"{what} is readable or writable by group or others ({path}): chmod 600 it"
            )
        return handle.read(1 << 16)


def _write_new_file(path: Path, data: bytes) -> None:
    """Write `data` to a new 0600 file atomically; an existing file is never replaced."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, stat.S_IRUSR | stat.S_IWUSR
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # link() fails when the target exists, unlike rename(): a key is never overwritten.
        os.link(temporary, path)
    except FileExistsError as exc:
        raise KeyStoreError(f"a file named {path.name} already exists") from exc
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
