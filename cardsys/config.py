"""Settings: one frozen dataclass, loaded from defaults, an optional TOML file and `CARDSYS_*`.

Precedence, lowest first: the defaults below, the TOML file (`CARDSYS_CONFIG`, else
`<instance>/cardsys.toml` when it exists), then environment variables named `CARDSYS_<FIELD>`
in upper case (`CARDSYS_MAX_DEVICES=5`). Every value is type-checked and range-checked on load;
a bad one raises `ConfigError` naming the field and the source.

Secrets (`key_passphrase`, `pkcs11_pin`) are excluded from `repr` so a settings object can be
logged or printed safely.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cardsys.errors import ConfigError


class KeyStoreKind(enum.StrEnum):
    FILE = "file"
    PKCS11 = "pkcs11"


class UnknownStatusPolicy(enum.StrEnum):
    """What a terminal does when it cannot establish a card's status (stale or missing list)."""

    REJECT = "reject"
    ACCEPT = "accept"


@dataclass(frozen=True)
class Settings:
    """Every tunable of cardsys, validated. Construct through `load_settings`."""

    instance_path: Path = Path("instance")
    #: Empty means SQLite at `<instance_path>/cardsys.db`.
    database_url: str = ""
    #: Two capital letters that open every card number.
    agency_prefix: str = "SS"
    #: The `iss` of credentials and the name of the agency on documents.
    issuer: str = "cardsys-dev"
    #: Base URL published in credentials (status list URIs) and the trust-list location.
    public_base_url: str = "http://127.0.0.1:8000"

    max_devices: int = 3
    #: Seconds a presentation proof stays acceptable, clock skew included.
    presentation_window: int = 90
    #: Seconds between QR refreshes on the phone.
    presentation_step: int = 30
    #: Seconds of clock skew allowed on credential `iat`/`nbf`/`exp`.
    clock_skew: int = 300
    credential_lifetime_days: int = 7
    card_validity_years: int = 10
    activation_code_ttl: int = 600
    activation_max_attempts: int = 5
    batch_size: int = 100
    #: Entries per status-list shard (2**20 plans for a billion cards in ~1000 shards).
    status_list_size: int = 1 << 20
    #: Seconds a terminal may cache a status list (`ttl` claim).
    status_list_ttl: int = 3600
    #: Seconds after which a terminal treats a status list as stale.
    status_list_max_age: int = 86400
    unknown_status_policy: UnknownStatusPolicy = UnknownStatusPolicy.REJECT

    trust_list_validity_days: int = 7
    #: Seconds a terminal keeps accepting a trust list past its next update.
    trust_list_grace: int = 3 * 86400

    key_store: KeyStoreKind = KeyStoreKind.FILE
    key_passphrase: str = field(default="", repr=False)
    key_passphrase_file: str = ""
    pkcs11_module: str = "/usr/lib/softhsm/libsofthsm2.so"
    pkcs11_token_label: str = "cardsys"  # noqa: S105 (a label, not a secret)
    pkcs11_pin: str = field(default="", repr=False)
    root_validity_years: int = 25
    #: Months a signer key signs before rotation.
    signer_usage_months: int = 6
    #: Years a signer certificate stays valid: longer than anything it signs lives.
    signer_validity_years: int = 12

    login_max_failures: int = 5
    login_lock_seconds: int = 900
    #: Set in production behind HTTPS: session cookies get the Secure flag.
    secure_cookies: bool = False

    @property
    def database(self) -> str:
        """The SQLAlchemy URL in use."""
        return self.database_url or f"sqlite:///{(self.instance_path / 'cardsys.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.database.startswith("sqlite")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed, validated again."""
        return _validated(dataclasses.replace(self, **changes), "replace()")


_POSITIVE = {
    "max_devices",
    "presentation_window",
    "presentation_step",
    "credential_lifetime_days",
    "card_validity_years",
    "activation_code_ttl",
    "activation_max_attempts",
    "batch_size",
    "status_list_size",
    "status_list_ttl",
    "status_list_max_age",
    "trust_list_validity_days",
    "root_validity_years",
    "signer_usage_months",
    "signer_validity_years",
    "login_max_failures",
    "login_lock_seconds",
}


def load_settings(
    env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Load settings from defaults, TOML, environment and explicit overrides (highest).

    Raises:
        ConfigError: a value has the wrong type or range, or the TOML file is unreadable.
    """
    env = os.environ if env is None else env
    values: dict[str, tuple[Any, str]] = {}
    instance = Path(env.get("CARDSYS_INSTANCE_PATH", "instance"))
    toml_path = env.get("CARDSYS_CONFIG") or str(instance / "cardsys.toml")
    if env.get("CARDSYS_CONFIG") or Path(toml_path).is_file():
        for name, value in _read_toml(Path(toml_path)).items():
            values[name] = (value, toml_path)
    known = {f.name for f in fields(Settings)}
    for key, value in env.items():
        if key.startswith("CARDSYS_") and key not in ("CARDSYS_CONFIG",):
            name = key.removeprefix("CARDSYS_").lower()
            if name in known:
                values[name] = (value, key)
    for name, value in (overrides or {}).items():
        values[name] = (value, "override")
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r} (from {values[unknown[0]][1]})")
    converted = {name: _convert(name, value, source) for name, (value, source) in values.items()}
    return _validated(Settings(**converted), "settings")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"settings file {path} is not valid TOML: {exc}") from exc
    section = data.get("cardsys", data)
    if not isinstance(section, dict):
        raise ConfigError(f"settings file {path}: [cardsys] must be a table")
    return section


def _convert(name: str, value: Any, source: str) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    try:
        if kind == "Path":
            if not isinstance(value, str | Path):
                raise ValueError(value)
            return Path(value)
        if kind == "int":
            if isinstance(value, bool | float) or not isinstance(value, int | str):
                raise ValueError(value)
            return int(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if kind == "KeyStoreKind":
            return KeyStoreKind(str(value))
        if kind == "UnknownStatusPolicy":
            return UnknownStatusPolicy(str(value))
        if not isinstance(value, str):
            raise ValueError(value)
        return value
    except ValueError as exc:
        raise ConfigError(f"setting {name} from {source}: {value!r} is not a valid {kind}") from exc


def _validated(settings: Settings, source: str) -> Settings:
    for name in _POSITIVE:
        if getattr(settings, name) <= 0:
            raise ConfigError(f"setting {name} ({source}) must be a positive number")
    prefix = settings.agency_prefix
    if not (len(prefix) == 2 and prefix.isascii() and prefix.isalpha() and prefix.isupper()):
        raise ConfigError(f"setting agency_prefix ({source}) must be two capital letters A-Z")
    if settings.presentation_step > settings.presentation_window:
        raise ConfigError(
            f"setting presentation_step ({source}) must not exceed presentation_window"
        )
    if settings.status_list_size % 8:
        raise ConfigError(f"setting status_list_size ({source}) must be a multiple of 8")
    if settings.signer_validity_years <= settings.card_validity_years:
        raise ConfigError(
            f"setting signer_validity_years ({source}) must exceed card_validity_years: "
            "a signer certificate has to outlive every card it signed"
        )
    url = settings.database
    if not (url.startswith("sqlite") or url.startswith("postgresql")):
        raise ConfigError(
            f"setting database_url ({source}): only SQLite and PostgreSQL are supported"
        )
    return settings
