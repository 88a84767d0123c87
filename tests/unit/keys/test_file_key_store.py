"""FileKeyStore: encrypted at rest, 0600, atomic, refusing wrong passphrases and odd files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from asn1crypto import pem
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import keys.store
from cardsys.config import KeyStoreKind, Settings, load_settings
from cardsys.errors import KeyStoreError, NotFoundError, WrongPassphraseError
from keys import pkcs8
from keys.store import Curve, FileKeyStore, KeyRef, open_key_store, read_passphrase

PASSPHRASE = "correct horse battery staple"
FAST = pkcs8.MIN_LOG2_N


def _store(directory: Path, passphrase: str = PASSPHRASE) -> FileKeyStore:
    return FileKeyStore(directory, passphrase, scrypt_log2_n=FAST)


def _scalar(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_numbers().private_value.to_bytes((key.curve.key_size + 7) // 8, "big")


def test_key_file_is_0600_in_a_0700_directory_and_encrypted(tmp_path: Path) -> None:
    store = _store(tmp_path / "keys")
    ref = store.generate("root", Curve.P384)
    path = store.path(ref)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    key = store._private_key(ref)
    plain = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _label, _headers, der = pem.unarmor(data)
    assert _scalar(key) not in der
    assert plain not in der
    assert [p.name for p in (tmp_path / "keys").iterdir()] == [path.name]  # no temp file left


def test_default_cost_is_scrypt_2_17(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path, PASSPHRASE)
    ref = store.generate("root", Curve.P256)
    der = pem.unarmor(store.path(ref).read_bytes())[2]
    document = pkcs8._EncryptedPrivateKeyInfo.load(der)
    params = document["encryption_algorithm"]["parameters"]["key_derivation_func"]["parameters"]
    assert params["cost_parameter"].native == 1 << 17
    assert len(params["salt"].native) == 16


def test_a_new_store_reads_keys_back_with_the_passphrase(tmp_path: Path) -> None:
    first = _store(tmp_path)
    ref = first.generate("credential", Curve.P256)
    expected = first.public_key(ref).public_numbers()
    second = _store(tmp_path)
    assert second.public_key(ref).public_numbers() == expected
    second.sign(ref, b"data")


@pytest.mark.parametrize("wrong", ["correct horse battery stapl", "x", PASSPHRASE + " "])
def test_wrong_passphrase_is_a_specific_error(tmp_path: Path, wrong: str) -> None:
    ref = _store(tmp_path).generate("credential", Curve.P256)
    with pytest.raises(WrongPassphraseError):
        _store(tmp_path, wrong).sign(ref, b"data")


def test_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="passphrase"):
        FileKeyStore(tmp_path, "")


def test_repr_shows_no_passphrase(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert PASSPHRASE not in repr(store)
    assert PASSPHRASE not in str(vars(store).get("_directory"))


def _rewrite(path: Path, data: bytes) -> None:
    path.chmod(0o600)
    path.write_bytes(data)
    path.chmod(0o600)


def test_a_key_in_the_clear_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ref = store.generate("credential", Curve.P256)
    clear = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _rewrite(store.path(ref), clear)
    with pytest.raises(KeyStoreError, match="not an encrypted private key"):
        _store(tmp_path).public_key(ref)


def test_pbkdf2_at_2048_rounds_is_refused(tmp_path: Path) -> None:
    # cryptography's BestAvailableEncryption: readable, but too cheap to attack to be accepted.
    store = _store(tmp_path)
    ref = store.generate("credential", Curve.P256)
    weak = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    )
    _rewrite(store.path(ref), weak)
    with pytest.raises(KeyStoreError) as caught:
        _store(tmp_path).public_key(ref)
    assert not isinstance(caught.value, WrongPassphraseError)


@pytest.mark.parametrize("log2_n", [13, 21, 30])
def test_scrypt_cost_outside_bounds_is_refused_on_write(log2_n: int) -> None:
    with pytest.raises(KeyStoreError, match="scrypt"):
        pkcs8.encrypt_private_key(ec.generate_private_key(ec.SECP256R1()), b"pw", log2_n=log2_n)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cost_parameter", 1 << 21),  # would take 2 GiB and seconds
        ("cost_parameter", 1 << 30),
        ("cost_parameter", 3 << 14),  # not a power of two
        ("cost_parameter", 1 << 13),  # too cheap to be a real obstacle
        ("block_size", 64),
        ("parallelization_parameter", 16),
    ],
)
def test_a_file_demanding_odd_scrypt_parameters_is_refused_before_decrypting(
    field: str, value: int
) -> None:
    data = pkcs8.encrypt_private_key(ec.generate_private_key(ec.SECP256R1()), b"pw", log2_n=FAST)
    document = pkcs8._EncryptedPrivateKeyInfo.load(pem.unarmor(data)[2])
    kdf = document["encryption_algorithm"]["parameters"]["key_derivation_func"]
    kdf["parameters"][field] = value
    tampered = pem.armor("ENCRYPTED PRIVATE KEY", document.dump(force=True))
    with pytest.raises(KeyStoreError, match="scrypt parameters"):
        pkcs8.decrypt_private_key(tampered, b"pw")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda data: data[: len(data) // 2],
        lambda data: b"",
        lambda data: b"not a pem file at all",
        lambda data: data.replace(b"ENCRYPTED PRIVATE KEY", b"CERTIFICATE"),
        lambda data: data * 40,
        lambda data: pem.armor("ENCRYPTED PRIVATE KEY", b"\x30\x03\x02\x01\x01"),
        lambda data: pem.armor("ENCRYPTED PRIVATE KEY", pem.unarmor(data)[2] + b"\x00"),
    ],
)
def test_damaged_files_are_key_store_errors(tmp_path: Path, mangle) -> None:  # type: ignore[no-untyped-def]
    store = _store(tmp_path)
    ref = store.generate("credential", Curve.P256)
    _rewrite(store.path(ref), mangle(store.path(ref).read_bytes()))
    with pytest.raises(KeyStoreError):
        _store(tmp_path).public_key(ref)


def test_a_flipped_ciphertext_byte_never_yields_a_usable_other_key(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ref = store.generate("credential", Curve.P256)
    original = store.public_key(ref).public_numbers()
    der = bytearray(pem.unarmor(store.path(ref).read_bytes())[2])
    der[-20] ^= 0x01
    _rewrite(store.path(ref), pem.armor("ENCRYPTED PRIVATE KEY", bytes(der)))
    try:
        key = _store(tmp_path).public_key(ref)
    except KeyStoreError:
        return
    assert key.public_numbers() != original  # and a signer would then refuse the certificate


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o602])
def test_a_key_file_others_can_access_is_refused(tmp_path: Path, mode: int) -> None:
    store = _store(tmp_path)
    ref = store.generate("credential", Curve.P256)
    store.path(ref).chmod(mode)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        _store(tmp_path).public_key(ref)


def test_a_symlinked_key_file_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path / "keys")
    ref = store.generate("credential", Curve.P256)
    elsewhere = tmp_path / "elsewhere.pem"
    store.path(ref).rename(elsewhere)
    store.path(ref).symlink_to(elsewhere)
    with pytest.raises(KeyStoreError):
        _store(tmp_path / "keys").public_key(ref)


def test_a_missing_key_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        _store(tmp_path).public_key(KeyRef("credential-000000000000"))


def test_generate_never_overwrites_an_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    ref = store.generate("credential", Curve.P256)
    before = store.path(ref).read_bytes()
    monkeypatch.setattr("keys.store.new_ref", lambda label: ref)
    with pytest.raises(KeyStoreError, match="already exists"):
        store.generate("credential", Curve.P256)
    assert store.path(ref).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [store.path(ref).name]


def test_the_key_never_touches_disk_in_the_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[bytes] = []
    real_write = keys.store._write_new_file

    def spy(path: Path, data: bytes) -> None:
        written.append(data)
        real_write(path, data)

    monkeypatch.setattr(keys.store, "_write_new_file", spy)
    store = _store(tmp_path)
    ref = store.generate("credential", Curve.P256)
    key = store._private_key(ref)
    assert len(written) == 1
    everything = written[0] + store.path(ref).read_bytes()
    assert _scalar(key) not in everything
    assert b"BEGIN PRIVATE KEY" not in everything


# --- the passphrase from settings --------------------------------------------------------------


def _settings(tmp_path: Path, **changes: object) -> Settings:
    return load_settings(env={}).replace(instance_path=tmp_path, **changes)


def test_passphrase_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(
        env={"CARDSYS_KEY_PASSPHRASE": "from env", "CARDSYS_INSTANCE_PATH": str(tmp_path)}
    )
    assert read_passphrase(settings) == "from env"
    assert "from env" not in repr(settings)


def test_passphrase_from_a_0600_file_without_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "passphrase"
    path.write_text("file secret\n")
    path.chmod(0o600)
    assert read_passphrase(_settings(tmp_path, key_passphrase_file=str(path))) == "file secret"


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "passphrase"
    path.write_text("file secret")
    path.chmod(0o600)
    settings = _settings(tmp_path, key_passphrase="env secret", key_passphrase_file=str(path))
    assert read_passphrase(settings) == "env secret"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_passphrase_file_others_can_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "passphrase"
    path.write_text("file secret")
    path.chmod(mode)
    with pytest.raises(KeyStoreError, match="group or others") as caught:
        read_passphrase(_settings(tmp_path, key_passphrase_file=str(path)))
    assert "file secret" not in str(caught.value)


@pytest.mark.parametrize("content", [b"", b"\n", b"\xff\xfe"])
def test_an_empty_or_binary_passphrase_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "passphrase"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyStoreError):
        read_passphrase(_settings(tmp_path, key_passphrase_file=str(path)))


def test_a_symlinked_passphrase_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("file secret")
    target.chmod(0o600)
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(KeyStoreError):
        read_passphrase(_settings(tmp_path, key_passphrase_file=str(tmp_path / "link")))


def test_no_passphrase_at_all_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="CARDSYS_KEY_PASSPHRASE"):
        read_passphrase(_settings(tmp_path))
    with pytest.raises(NotFoundError):
        read_passphrase(_settings(tmp_path, key_passphrase_file=str(tmp_path / "missing")))


def test_open_key_store_picks_the_file_store_under_the_instance(tmp_path: Path) -> None:
    store = open_key_store(_settings(tmp_path, key_passphrase=PASSPHRASE))
    assert isinstance(store, FileKeyStore)
    assert store.kind is KeyStoreKind.FILE
    assert store.directory == tmp_path / "keys"
