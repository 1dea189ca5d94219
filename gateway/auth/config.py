"""The ``auth`` section of the gateway configuration, with its defaults.

Keys (all optional)::

    auth:
      issuer: "urn:loangate"        # iss of the gateway's own tokens; use the public base URL
      audience: "loangate"          # aud of own tokens, and the default aud expected from others
      token_ttl_seconds: 300        # lifetime of issued access tokens (60..86400)
      leeway_seconds: 30            # clock skew allowed on exp / nbf / iat (0..300)
      keys_dir: null                # where signing keys live; default <instance>/keys
      signing_keys: []              # or PEMs from config: [{kid, pem_file}] (or {kid, pem});
                                    # the first one signs, the others only verify
      trusted_issuers:              # external IdPs whose tokens are accepted too
        - issuer: "https://idp.example.com/"
          audience: "api://loangate"          # default: auth.audience
          jwks_file: "idp-jwks.json"          # relative to the config directory ...
          jwks_uri: "https://idp.example.com/jwks"   # ... or fetched at start (one of the two)
          scope_claim: "scope"                # "scp" for some IdPs; string or list claim
          client_id_claim: null               # default: first of client_id, azp, sub
          algorithms: ["RS256"]               # asymmetric only: RS*/PS*/ES*/EdDSA

Relative paths (``keys_dir``, ``pem_file``, ``jwks_file``) resolve against the config directory.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError

#: Defaults of the ``auth`` config section (a deep copy is merged under the given values).
DEFAULT_AUTH_CONFIG: dict[str, Any] = {
    "issuer": "urn:loangate",
    "audience": "loangate",
    "token_ttl_seconds": 300,
    "leeway_seconds": 30,
    "keys_dir": None,
    "signing_keys": [],
    "trusted_issuers": [],
}

DEFAULT_TRUSTED_ISSUER: dict[str, Any] = {
    "audience": None,
    "jwks_file": None,
    "jwks_uri": None,
    "scope_claim": "scope",
    "client_id_claim": None,
    "algorithms": ["RS256"],
}

#: Algorithms an external issuer may use. Symmetric (HS*) and ``none`` are never accepted:
#: a JWKS is public, so an HMAC "key" from it would let anyone mint tokens.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


@dataclass(frozen=True)
class SigningKeySetting:
    """A signing key given in config: its kid and a PEM file or inline PEM."""

    kid: str
    pem_file: Path | None = None
    pem: str | None = None


@dataclass(frozen=True)
class TrustedIssuerSettings:
    """One external issuer whose access tokens the gateway accepts."""

    issuer: str
    audience: str
    jwks_file: Path | None
    jwks_uri: str | None
    scope_claim: str
    client_id_claim: str | None
    algorithms: frozenset[str]


@dataclass(frozen=True)
class AuthSettings:
    """The validated ``auth`` section with paths resolved."""

    issuer: str
    audience: str
    token_ttl_seconds: int
    leeway_seconds: int
    keys_dir: Path
    signing_keys: tuple[SigningKeySetting, ...]
    trusted_issuers: tuple[TrustedIssuerSettings, ...]

    @classmethod
    def from_config(
        cls, section: dict[str, Any] | None, instance_path: Path, config_dir: Path
    ) -> AuthSettings:
        """Merge ``section`` over :data:`DEFAULT_AUTH_CONFIG` and validate it."""
        raw = copy.deepcopy(DEFAULT_AUTH_CONFIG)
        raw.update({k: v for k, v in (section or {}).items() if v is not None})
        unknown = sorted(set(raw) - set(DEFAULT_AUTH_CONFIG))
        if unknown:
            raise ConfigError(f"auth: unknown key(s) {', '.join(unknown)}")
        issuer = _str(raw["issuer"], "auth.issuer")
        audience = _str(raw["audience"], "auth.audience")
        ttl = _int(raw["token_ttl_seconds"], "auth.token_ttl_seconds", 60, 86400)
        leeway = _int(raw["leeway_seconds"], "auth.leeway_seconds", 0, 300)
        keys_dir = (
            _path(raw["keys_dir"], config_dir, "auth.keys_dir")
            if raw["keys_dir"]
            else Path(instance_path) / "keys"
        )
        signing = tuple(
            _signing_key(entry, config_dir, f"auth.signing_keys[{i}]")
            for i, entry in enumerate(_list(raw["signing_keys"], "auth.signing_keys"))
        )
        if len({s.kid for s in signing}) != len(signing):
            raise ConfigError("auth.signing_keys: kids must be unique")
        trusted = tuple(
            _trusted(entry, audience, config_dir, f"auth.trusted_issuers[{i}]")
            for i, entry in enumerate(_list(raw["trusted_issuers"], "auth.trusted_issuers"))
        )
        names = [issuer, *(t.issuer for t in trusted)]
        if len(set(names)) != len(names):
            raise ConfigError(
                "auth.trusted_issuers: issuers must be unique and differ from auth.issuer"
            )
        return cls(issuer, audience, ttl, leeway, keys_dir, signing, trusted)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: must be a non-empty string")
    return value


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{where}: must be an integer between {lo} and {hi}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list")
    return value


def _path(value: Any, base: Path, where: str) -> Path:
    path = Path(_str(value, where)).expanduser()
    return path if path.is_absolute() else Path(base) / path


def _signing_key(entry: Any, config_dir: Path, where: str) -> SigningKeySetting:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a mapping with kid and pem_file")
    extra = sorted(set(entry) - {"kid", "pem_file", "pem"})
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(extra)}")
    kid = _str(entry.get("kid"), f"{where}.kid")
    if ("pem_file" in entry) == ("pem" in entry):
        raise ConfigError(f"{where}: give exactly one of pem_file or pem")
    if "pem" in entry:
        return SigningKeySetting(kid, pem=_str(entry["pem"], f"{where}.pem"))
    return SigningKeySetting(
        kid, pem_file=_path(entry["pem_file"], config_dir, f"{where}.pem_file")
    )


def _trusted(entry: Any, audience: str, config_dir: Path, where: str) -> TrustedIssuerSettings:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a mapping")
    raw = {**DEFAULT_TRUSTED_ISSUER, **{k: v for k, v in entry.items() if v is not None}}
    extra = sorted(set(raw) - set(DEFAULT_TRUSTED_ISSUER) - {"issuer"})
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(extra)}")
    if (raw["jwks_file"] is None) == (raw["jwks_uri"] is None):
        raise ConfigError(f"{where}: give exactly one of jwks_file or jwks_uri")
    jwks_file = (
        _path(raw["jwks_file"], config_dir, f"{where}.jwks_file") if raw["jwks_file"] else None
    )
    jwks_uri = _str(raw["jwks_uri"], f"{where}.jwks_uri") if raw["jwks_uri"] else None
    if jwks_uri and not jwks_uri.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise ConfigError(f"{where}.jwks_uri: must be an https URL")
    algorithms = frozenset(_list(raw["algorithms"], f"{where}.algorithms"))
    bad = sorted(str(a) for a in algorithms - ASYMMETRIC_ALGORITHMS)
    if bad or not algorithms:
        raise ConfigError(
            f"{where}.algorithms: {', '.join(bad) or 'empty'} not allowed; "
            f"use {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}"
        )
    client_id_claim = raw["client_id_claim"]
    return TrustedIssuerSettings(
        issuer=_str(raw.get("issuer"), f"{where}.issuer"),
        audience=_str(raw["audience"] or audience, f"{where}.audience"),
        jwks_file=jwks_file,
        jwks_uri=jwks_uri,
        scope_claim=_str(raw["scope_claim"], f"{where}.scope_claim"),
        client_id_claim=(
            _str(client_id_claim, f"{where}.client_id_claim") if client_id_claim else None
        ),
        algorithms=algorithms,
    )
