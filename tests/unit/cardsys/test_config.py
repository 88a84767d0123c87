"""Settings: defaults, the TOML file, environment overrides, validation and secrets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cardsys.config import KeyStoreKind, Settings, UnknownStatusPolicy, load_settings
from cardsys.errors import ConfigError


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # load_settings looks for ./instance/cardsys.toml: never pick up a developer's own.
    monkeypatch.chdir(tmp_path)


def write_toml(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def test_defaults() -> None:
    settings = load_settings(env={})
    assert settings == Settings()
    assert settings.instance_path == Path("instance")
    assert settings.max_devices == 3
    assert settings.presentation_window == 90
    assert settings.batch_size == 100
    assert settings.status_list_size == 1 << 20
    assert settings.agency_prefix == "SS"
    assert settings.key_store is KeyStoreKind.FILE
    assert settings.unknown_status_policy is UnknownStatusPolicy.REJECT
    assert settings.secure_cookies is False
    assert settings.is_sqlite
    assert settings.database == f"sqlite:///{(Path('instance') / 'cardsys.db').resolve()}"


def test_instance_path_from_the_environment_places_the_sqlite_database(tmp_path: Path) -> None:
    settings = load_settings(env={"CARDSYS_INSTANCE_PATH": str(tmp_path / "inst")})
    assert settings.instance_path == tmp_path / "inst"
    assert settings.database == f"sqlite:///{tmp_path / 'inst' / 'cardsys.db'}"


def test_a_postgresql_url_is_used_as_given() -> None:
    url = "postgresql+psycopg://cardsys@db.example/cardsys"
    settings = load_settings(env={"CARDSYS_DATABASE_URL": url})
    assert settings.database == url
    assert not settings.is_sqlite


def test_toml_named_by_cardsys_config(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "c.toml", "[cardsys]\nmax_devices = 5\nkey_store = 'pkcs11'\n"
                      "secure_cookies = true\nissuer = 'agency'\n")
    settings = load_settings(env={"CARDSYS_CONFIG": str(path)})
    assert settings.max_devices == 5
    assert settings.key_store is KeyStoreKind.PKCS11
    assert settings.secure_cookies is True
    assert settings.issuer == "agency"


def test_toml_keys_at_top_level(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "c.toml", "batch_size = 7\n")
    assert load_settings(env={"CARDSYS_CONFIG": str(path)}).batch_size == 7


def test_toml_in_the_instance_folder_is_found(tmp_path: Path) -> None:
    instance = tmp_path / "inst"
    instance.mkdir()
    write_toml(instance / "cardsys.toml", "[cardsys]\npresentation_window = 120\n")
    settings = load_settings(env={"CARDSYS_INSTANCE_PATH": str(instance)})
    assert settings.presentation_window == 120


def test_precedence_defaults_then_toml_then_environment_then_overrides(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "c.toml", "max_devices = 5\nbatch_size = 50\nissuer = 'toml'\n")
    env = {"CARDSYS_CONFIG": str(path), "CARDSYS_MAX_DEVICES": "7", "CARDSYS_ISSUER": "env"}
    settings = load_settings(env=env, overrides={"issuer": "override"})
    assert settings.batch_size == 50  # TOML over the default
    assert settings.max_devices == 7  # environment over TOML
    assert settings.issuer == "override"  # explicit override over the environment
    assert settings.presentation_window == 90  # untouched default


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("true", True), ("Yes", True), ("on", True), ("0", False), ("false", False),
     ("no", False), ("OFF", False), ("", False)],
)
def test_booleans_from_the_environment(text: str, expected: bool) -> None:
    assert load_settings(env={"CARDSYS_SECURE_COOKIES": text}).secure_cookies is expected


def test_other_cardsys_variables_are_not_settings() -> None:
    # CARDSYS_OPERATOR (the CLI's acting login) and CARDSYS_DEBUG share the prefix.
    settings = load_settings(env={"CARDSYS_OPERATOR": "alice", "CARDSYS_DEBUG": "1"})
    assert settings == Settings()


# (source, field, value): each must raise ConfigError naming the field.
INVALID_ENV = [
    ("max_devices", "0"),
    ("max_devices", "-1"),
    ("max_devices", "three"),
    ("max_devices", "2.5"),
    ("presentation_window", ""),
    ("batch_size", "0x10"),
    ("status_list_size", "1001"),  # not a multiple of 8
    ("presentation_step", "91"),  # longer than the 90 s window
    ("agency_prefix", "S1"),
    ("agency_prefix", "ss"),
    ("agency_prefix", "SSS"),
    ("agency_prefix", "ÄÖ"),
    ("signer_validity_years", "10"),  # must outlive card_validity_years (10)
    ("card_validity_years", "12"),
    ("database_url", "mysql://cardsys@db/cardsys"),
    ("secure_cookies", "maybe"),
    ("key_store", "hsm"),
    ("unknown_status_policy", "ignore"),
    ("login_max_failures", "0"),
]


@pytest.mark.parametrize(("name", "value"), INVALID_ENV)
def test_invalid_environment_values_name_the_field(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(env={f"CARDSYS_{name.upper()}": value})


INVALID_TOML = [
    ("max_devices", "0"),
    ("max_devices", "true"),  # a bool is not a count
    ("max_devices", "2.5"),  # a float must not be truncated to 2 silently
    ("max_devices", "'lots'"),
    ("secure_cookies", "'perhaps'"),
    ("agency_prefix", "12"),
    ("issuer", "5"),  # strings must be strings, not numbers turned into text
    ("public_base_url", "['http://a']"),
    ("database_url", "['sqlite://']"),
]


@pytest.mark.parametrize(("name", "value"), INVALID_TOML)
def test_invalid_toml_values_name_the_field(tmp_path: Path, name: str, value: str) -> None:
    path = write_toml(tmp_path / "c.toml", f"[cardsys]\n{name} = {value}\n")
    with pytest.raises(ConfigError, match=name):
        load_settings(env={"CARDSYS_CONFIG": str(path)})


def test_an_unknown_toml_key_is_refused_by_name(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "c.toml", "max_device = 3\n")
    with pytest.raises(ConfigError, match="max_device"):
        load_settings(env={"CARDSYS_CONFIG": str(path)})


def test_an_unknown_override_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="no_such_setting"):
        load_settings(env={}, overrides={"no_such_setting": 1})


@pytest.mark.parametrize(
    ("body", "message"),
    [("max_devices = = 3\n", "not valid TOML"), ("cardsys = 3\n", "must be a table")],
)
def test_a_broken_toml_file_is_a_config_error(tmp_path: Path, body: str, message: str) -> None:
    path = write_toml(tmp_path / "c.toml", body)
    with pytest.raises(ConfigError, match=message):
        load_settings(env={"CARDSYS_CONFIG": str(path)})


def test_a_missing_config_file_named_explicitly_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(env={"CARDSYS_CONFIG": str(tmp_path / "absent.toml")})


def test_replace_validates_again() -> None:
    settings = load_settings(env={})
    assert settings.replace(max_devices=4).max_devices == 4
    with pytest.raises(ConfigError, match="max_devices"):
        settings.replace(max_devices=0)


def test_settings_are_frozen() -> None:
    settings = load_settings(env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_devices = 9  # type: ignore[misc]


SECRETS = {"key_passphrase": "correct horse battery staple", "pkcs11_pin": "864213"}


def test_secrets_are_absent_from_repr(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "c.toml", f"key_passphrase = '{SECRETS['key_passphrase']}'\n")
    settings = load_settings(
        env={"CARDSYS_CONFIG": str(path), "CARDSYS_PKCS11_PIN": SECRETS["pkcs11_pin"]}
    )
    assert settings.key_passphrase == SECRETS["key_passphrase"]
    assert settings.pkcs11_pin == SECRETS["pkcs11_pin"]
    for text in (repr(settings), str(settings), f"{settings!r}"):
        for secret in SECRETS.values():
            assert secret not in text
    assert "max_devices=3" in repr(settings)  # repr still shows the rest


def test_a_config_error_does_not_echo_a_secret(tmp_path: Path) -> None:
    # A broken file holding a passphrase: the error names the problem, not the file's content.
    path = write_toml(tmp_path / "c.toml",
                      f"key_passphrase = '{SECRETS['key_passphrase']}'\nmax_devices = 0\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"CARDSYS_CONFIG": str(path)})
    assert SECRETS["key_passphrase"] not in str(caught.value)
