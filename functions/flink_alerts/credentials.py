"""Where the bridge finds its AccessKey: FC context, then environment, then a local profile."""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CredentialsError
from .scrub import SCRUBBER

ENV_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"
ENV_PROFILE = "ALIBABA_CLOUD_PROFILE"
ENV_FILE = "ALIBABA_CLOUD_CREDENTIALS_FILE"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Servers echo what they were sent: from now on no output of this process shows these.
        SCRUBBER.remember(self.access_key_secret, self.security_token)

    @property
    def is_sts(self) -> bool:
        return bool(self.security_token)


def resolve_credentials(
    context: Any = None, environ: Mapping[str, str] | None = None
) -> Credentials:
    """The first complete AccessKey of: FC context, environment variables, local profile file."""
    env = os.environ if environ is None else environ
    found = _from_context(context) or _from_env(env)
    if found:
        return found
    path = _profile_path(env)
    profile = env.get(ENV_PROFILE) or "default"
    found = _from_profile(path, profile)
    if found:
        return found
    raise CredentialsError(
        "no AccessKey found: looked at the Function Compute context credentials, "
        f"{ENV_ID}/{ENV_SECRET} and profile [{profile}] of {path}"
    )


def _make(key_id: Any, secret: Any, token: Any) -> Credentials | None:
    if not key_id or not secret:
        return None
    return Credentials(str(key_id), str(secret), str(token) if token else None)


def _from_context(context: Any) -> Credentials | None:
    creds = getattr(context, "credentials", None)
    if creds is None:
        return None
    return _make(
        getattr(creds, "access_key_id", None),
        getattr(creds, "access_key_secret", None),
        getattr(creds, "security_token", None),
    )


def _from_env(env: Mapping[str, str]) -> Credentials | None:
    return _make(env.get(ENV_ID), env.get(ENV_SECRET), env.get(ENV_TOKEN))


def _profile_path(env: Mapping[str, str]) -> Path:
    if env.get(ENV_FILE):
        return Path(env[ENV_FILE]).expanduser()
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".alibabacloud" / "credentials"


def _from_profile(path: Path, profile: str) -> Credentials | None:
    if not path.is_file():
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError) as exc:
        reason = type(exc).__name__
        raise CredentialsError(f"cannot read credentials file {path}: {reason}") from None
    if not parser.has_section(profile):
        return None
    section = parser[profile]
    kind = section.get("type", "access_key").strip()
    if kind != "access_key":
        raise CredentialsError(
            f"profile [{profile}] of {path} has type {kind!r}; only type access_key is supported"
        )
    return _make(section.get("access_key_id"), section.get("access_key_secret"), None)
