"""The `discover:` and `accounts:` configuration; settings.py only references these models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_REFRESH_S = 600.0
DEFAULT_FLINK_ENDPOINT = "https://ververica.{region}.aliyuncs.com"
DEFAULT_DISCOVERY_ENDPOINT = "https://foasconsole.{region}.aliyuncs.com"
_ENDPOINT = re.compile(r"^https?://[^/\s]+/?$")
_ROLE_ARN = re.compile(r"^acs:ram::\d+:role/\S+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_endpoint(value: str | None) -> str | None:
    """`https://host[:port]`, where host may hold `{region}`; no path."""
    if value is None:
        return None
    if not _ENDPOINT.match(value):
        raise ValueError("must look like https://host[:port] (host may contain {region})")
    try:
        value.format(region="r")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"unknown placeholder {exc} (only {{region}})") from None
    return value.rstrip("/")


def endpoint_for(template: str, region: str) -> str:
    """The endpoint of `region`; a template without `{region}` serves every region."""
    return template.format(region=region)


class TargetConfig(_Strict):
    workspace: str = Field(min_length=1)
    namespace: str = Field(min_length=1)
    deployment_ids: list[str] = []
    region: str | None = None  # default: the account's first region, else the top-level `region`


class DiscoverConfig(_Strict):
    """Which workspaces/namespaces to find: globs match `WORKSPACE/NAMESPACE` (workspace id or
    name) and the workspace alone (id or name)."""

    regions: list[str] = []  # empty: the top-level (or account's) regions
    include: list[str] = ["*"]
    exclude: list[str] = []
    refresh: float = Field(DEFAULT_REFRESH_S, gt=0, le=30 * 86400, allow_inf_nan=False)
    endpoint: str | None = None  # default https://foasconsole.{region}.aliyuncs.com

    @field_validator("refresh", mode="before")
    @classmethod
    def _refresh(cls, value: Any) -> float:
        from ..settings import parse_duration

        return parse_duration(value)

    _endpoint = field_validator("endpoint")(lambda value: check_endpoint(value))

    @property
    def endpoint_template(self) -> str:
        return self.endpoint or DEFAULT_DISCOVERY_ENDPOINT


def targets_auto(data: Any) -> Any:
    """`targets: auto` means `discover: {}` (all defaults) unless `discover` is given."""
    if isinstance(data, dict) and data.get("targets") == "auto":
        data = {**data, "targets": []}
        data["discover"] = data.get("discover") or {}
    return data


class AccountConfig(_Strict):
    """Targets in another account, reached by STS AssumeRole signed with the function's own
    credentials."""

    role_arn: str
    regions: list[str] = []  # empty: the top-level discover's regions, else `region`
    discover: DiscoverConfig | None = None
    targets: list[TargetConfig] = []
    # The length is checked apart from the pattern: a counted repetition of `\w` (all of
    # Unicode) would cost the regex engine some 20 ms to compile at every cold start.
    session_name: str = Field("flink-alerts", pattern=r"^[\w.@-]+$", min_length=2, max_length=64)

    @field_validator("role_arn")
    @classmethod
    def _check_role_arn(cls, value: str) -> str:
        if not _ROLE_ARN.match(value):
            raise ValueError("must look like acs:ram::ACCOUNT_ID:role/ROLE_NAME")
        return value

    @model_validator(mode="before")
    @classmethod
    def _auto(cls, data: Any) -> Any:
        return targets_auto(data)
