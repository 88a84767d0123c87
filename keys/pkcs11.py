"""Keys inside a PKCS#11 token (an HSM in production, SoftHSM2 in tests), via python-pkcs11.

Keys are generated inside the token as sensitive, never-extractable EC key pairs labelled (and
identified) by their `KeyRef`. Many tokens (SoftHSM2 among them) offer only the raw `CKM_ECDSA`
mechanism, so we hash on the host, let the token sign the digest, and convert its raw r||s to
the DER form the `Signer` protocol promises. `KeyStore.sign` verifies each signature before it
is returned.

Login state in PKCS#11 belongs to the whole application, not to a session: once one session is
logged in, a second `C_Login` answers "already logged in" whatever PIN it carries, and closing
any logged-in session logs every session out. So the stores of one process that open the same
token share one logged-in session (and a lock: a session is not safe for concurrent use), kept
until the last of them closes; a later store's PIN is compared with the one that logged in
(kept only as a keyed hash), so a wrong PIN cannot slip through as "already logged in".
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pkcs11
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from cardsys.config import KeyStoreKind
from cardsys.errors import KeyStoreError, NotFoundError, WrongPinError
from cardsys.pki import Algorithm, hash_for
from keys.store import Curve, KeyRef, KeyStore, checked_ref, new_ref

log = logging.getLogger(__name__)

T = TypeVar("T")

_CURVE_NAMES = {Curve.P256: "secp256r1", Curve.P384: "secp384r1"}
_COORDINATE_SIZE = {Algorithm.ES256: 32, Algorithm.ES384: 48}


@dataclass
class _Login:
    """The logged-in session on one token, shared by every store open on it."""

    session: pkcs11.Session
    pin_mac: bytes
    stores: int
    lock: threading.RLock


# Per-process: (module path, token label) -> its logged-in session. Guarded by _LOGIN_LOCK.
_LOGINS: dict[tuple[str, str], _Login] = {}
_LOGIN_LOCK = threading.Lock()
_PIN_KEY = secrets.token_bytes(32)


def _pin_mac(pin: str) -> bytes:
    return hmac.new(_PIN_KEY, pin.encode("utf-8"), hashlib.sha256).digest()


class Pkcs11KeyStore(KeyStore):
    """Keys in one PKCS#11 token, found by its label; one logged-in session per store."""

    kind = KeyStoreKind.PKCS11

    def __init__(self, module: str, token_label: str, pin: str) -> None:
        """Load the module, find the token and log in.

        Raises:
            KeyStoreError: no PIN, the module cannot be loaded, the token is missing or locked.
            WrongPinError: the token refuses the PIN.
        """
        if not pin:
            raise KeyStoreError("no PKCS#11 PIN: set CARDSYS_PKCS11_PIN")
        self._login_key = (module, token_label)
        self._public: dict[KeyRef, ec.EllipticCurvePublicKey] = {}
        try:
            library = pkcs11.lib(module)
        except pkcs11.PKCS11Error as exc:
            raise KeyStoreError(f"cannot load the PKCS#11 module {module}") from exc
        try:
            self._token = library.get_token(token_label=token_label)
        except pkcs11.NoSuchToken as exc:
            raise KeyStoreError(f"no PKCS#11 token labelled {token_label!r}") from exc
        except pkcs11.PKCS11Error as exc:
            raise KeyStoreError(f"cannot select PKCS#11 token {token_label!r}") from exc
        self._login = self._log_in(pin)
        self._session = self._login.session
        self._lock = self._login.lock
        self._closed = False

    def __repr__(self) -> str:
        return f"Pkcs11KeyStore(token={self._login_key[1]!r})"

    def _log_in(self, pin: str) -> _Login:
        label = self._login_key[1]
        with _LOGIN_LOCK:
            current = _LOGINS.get(self._login_key)
            if current is not None:
                if not hmac.compare_digest(current.pin_mac, _pin_mac(pin)):
                    raise WrongPinError(f"the PKCS#11 token {label!r} refused the PIN")
                current.stores += 1
                return current
            try:
                session = self._token.open(rw=True, user_pin=pin)
            except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange) as exc:
                raise WrongPinError(f"the PKCS#11 token {label!r} refused the PIN") from exc
            except pkcs11.PinLocked as exc:
                raise KeyStoreError(f"the PIN of PKCS#11 token {label!r} is locked") from exc
            except pkcs11.UserAlreadyLoggedIn as exc:
                raise KeyStoreError(
                    f"PKCS#11 token {label!r} is already logged in by other code in this process"
                ) from exc
            except pkcs11.PKCS11Error as exc:
                raise KeyStoreError(f"cannot open a session on PKCS#11 token {label!r}") from exc
            login = _Login(session, _pin_mac(pin), stores=1, lock=threading.RLock())
            _LOGINS[self._login_key] = login
            return login

    def close(self) -> None:
        """Leave the shared session; the last store on a token closes it (and logs out)."""
        with _LOGIN_LOCK, self._lock:
            if self._closed:
                return
            self._closed = True
            self._public.clear()
            self._login.stores -= 1
            if self._login.stores > 0:
                return
            if _LOGINS.get(self._login_key) is self._login:
                del _LOGINS[self._login_key]
            try:
                self._session.close()
            except pkcs11.PKCS11Error:
                log.warning("closing the PKCS#11 session failed", exc_info=True)

    def generate(self, label: str, curve: Curve) -> KeyRef:
        """Generate a sensitive, non-extractable key pair inside the token."""
        ref = new_ref(label)
        with self._lock:
            self._check_open()

            def create() -> Any:
                parameters = self._session.create_domain_parameters(
                    KeyType.EC,
                    {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVE_NAMES[curve])},
                    local=True,
                )
                return parameters.generate_keypair(
                    id=ref.encode(),
                    label=ref,
                    store=True,
                    public_template={Attribute.TOKEN: True, Attribute.VERIFY: True},
                    private_template={
                        Attribute.TOKEN: True,
                        Attribute.PRIVATE: True,
                        Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: False,
                        Attribute.SIGN: True,
                    },
                )

            _public, private = self._call(create)
            # A token may ignore a template entry; a key it would export is not acceptable.
            protected = self._call(
                lambda: private[Attribute.SENSITIVE] and not private[Attribute.EXTRACTABLE]
            )
            if not protected:
                self._call(private.destroy)
                raise KeyStoreError("the token generated an extractable key; it was destroyed")
        log.info("generated %s key %s in PKCS#11 token %s", curve.value, ref, self._login_key[1])
        return ref

    def contains(self, ref: KeyRef) -> bool:
        try:
            self._find(ref, ObjectClass.PRIVATE_KEY)
        except NotFoundError:
            return False
        return True

    def public_key(self, ref: KeyRef) -> ec.EllipticCurvePublicKey:
        with self._lock:
            cached = self._public.get(ref)
            if cached is not None:
                return cached
            key = self._find(ref, ObjectClass.PUBLIC_KEY)
            der = self._call(lambda: encode_ec_public_key(key))
            public = serialization.load_der_public_key(der)
            if not isinstance(public, ec.EllipticCurvePublicKey):
                raise KeyStoreError(f"key {ref} in the token is not an EC key")
            self._public[ref] = public
            return public

    def _sign_unchecked(self, ref: KeyRef, data: bytes, algorithm: Algorithm) -> bytes:
        digest = hashes.Hash(hash_for(algorithm))
        digest.update(data)
        prehash = digest.finalize()
        with self._lock:
            key = self._find(ref, ObjectClass.PRIVATE_KEY)
            raw: bytes = self._call(lambda: key.sign(prehash, mechanism=Mechanism.ECDSA))
        size = _COORDINATE_SIZE[algorithm]
        if len(raw) != 2 * size:
            raise KeyStoreError(f"the token returned a {len(raw)}-byte ECDSA signature")
        return encode_dss_signature(
            int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big")
        )

    def _find(self, ref: KeyRef, object_class: ObjectClass) -> Any:
        label = checked_ref(ref)
        with self._lock:
            self._check_open()
            try:
                return self._session.get_key(
                    object_class=object_class, key_type=KeyType.EC, label=label
                )
            except pkcs11.NoSuchKey as exc:
                raise NotFoundError(f"no key {label} in the PKCS#11 token") from exc
            except pkcs11.MultipleObjectsReturned as exc:
                raise KeyStoreError(f"several objects in the token are labelled {label}") from exc
            except pkcs11.PKCS11Error as exc:
                raise KeyStoreError(f"looking up key {label} in the token failed") from exc

    def _check_open(self) -> None:
        if self._closed:
            raise KeyStoreError("the PKCS#11 key store is closed")

    @staticmethod
    def _call(operation: Callable[[], T]) -> T:
        try:
            return operation()
        except pkcs11.PKCS11Error as exc:
            raise KeyStoreError(f"the PKCS#11 token failed: {type(exc).__name__}") from exc
