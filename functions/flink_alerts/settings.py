"""Configuration: one YAML file, `${VAR}` expansion, `FLINK_ALERTS_<KEY>` overrides, strict keys.

Every mistake becomes a ConfigError naming the key path (`receivers[1].webhook: ...`).
"""

from __future__ import annotations

import functools
import math
import operator
import os
import re
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .alerting.routing import Route, RouteConfig, build_tree, unknown_receivers
from .alerting.rules import Rule, RulesConfig, ruleset
from .alerting.silences import SilenceConfig
from .errors import ConfigError
from .fleet.config import (
    DEFAULT_FLINK_ENDPOINT,
    AccountConfig,
    DiscoverConfig,
    TargetConfig,
    check_endpoint,
    endpoint_for,
    targets_auto,
)
from .scrub import SCRUBBER

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from .units import Start, format_duration, parse_duration

ENV_PREFIX = "FLINK_ALERTS_"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
DAY = 86400.0
MAX_LOOKBACK_S = 365 * DAY
# A config of a few dozen receivers has a few thousand nodes; an alias bomb has billions.
MAX_YAML_NODES = 100_000
# Longer digit strings are out of every range (and beyond Python's int parsing limit).
MAX_DIGITS = 30


Duration = Annotated[float, Field(ge=0)]


def _as_int(value: Any) -> float:
    """A whole number; too many digits -> infinity (out of every range)."""
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        text = value.strip()
        return int(text) if len(text) <= MAX_DIGITS else math.copysign(math.inf, -(text[0] == "-"))
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError("must be a whole number")


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("must be a number")
    try:
        return float(value)
    except OverflowError:  # an int with thousands of digits
        return math.copysign(math.inf, value)
    except ValueError:
        raise ValueError("must be a number") from None


def _in_range(parse: Any, show: Any, low: float, high: float, value: Any) -> float:
    allowed = f"from {show(low)} to {show(high)}"
    try:
        number = parse(value)
    except ValueError as exc:
        raise ValueError(f"{exc}, {allowed}") from None
    if not low <= number <= high:  # also false for NaN
        raise ValueError(f"must be {allowed}")
    return number


def Count(low: int, high: int) -> Any:
    return Annotated[int, BeforeValidator(partial(_in_range, _as_int, str, low, high))]


def Number(low: float, high: float) -> Any:
    return Annotated[
        float, BeforeValidator(partial(_in_range, _as_float, "{:g}".format, low, high))
    ]


def Seconds(low: float, high: float) -> Any:
    return Annotated[
        float, BeforeValidator(partial(_in_range, parse_duration, format_duration, low, high))
    ]


def _check_url(value: SecretStr) -> SecretStr:
    """A receiver URL must be usable at send time; the message never shows it (it holds a token)."""
    try:
        parts = urlsplit(value.get_secret_value().strip())
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        usable = False
    if not usable:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


WebhookUrl = Annotated[SecretStr, AfterValidator(_check_url)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeliveryConfig(_Strict):
    initial_backoff: Seconds(0, DAY) = 30.0
    max_backoff: Seconds(0, 7 * DAY) = 900.0
    max_attempts: Count(1, 1000) = 20
    max_age: Seconds(0, 30 * DAY) = 86400.0
    timeout_s: Number(0.001, 600) = 10.0


class _Receiver(_Strict):
    # The module of `channels/` that sends for this receiver type.
    channel: ClassVar[str]

    name: str = Field(min_length=1)
    template: str | None = None
    # "20/min", "1/s", "100/h"; None keeps the channel's default.
    rate_limit: str | None = None
    _rate: tuple[int, float] | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _parse_rate(self) -> _Receiver:
        self._rate = parse_rate(self.rate_limit) if self.rate_limit is not None else None
        return self

    @property
    def rate(self) -> tuple[int, float] | None:
        """`rate_limit` parsed: at most `count` messages per `period` seconds."""
        return self._rate


class DingTalkReceiver(_Receiver):
    channel = "dingtalk"
    type: Literal["dingtalk"]
    webhook: WebhookUrl
    secret: SecretStr | None = None
    at_mobiles: list[str] = []
    at_user_ids: list[str] = []
    at_all: bool = False
    msgtype: Literal["markdown", "text", "actionCard"] = "markdown"


class SlackReceiver(_Receiver):
    channel = "slack"
    type: Literal["slack"]
    webhook: WebhookUrl


class EmailReceiver(_Receiver):
    channel = "email"
    type: Literal["email"]
    host: str = "smtpdm.aliyun.com"
    port: Count(1, 65535) = 465
    security: Literal["ssl", "starttls", "none"] = "ssl"
    username: str | None = None
    password: SecretStr | None = None
    sender: str
    to: list[str] = Field(min_length=1)
    cc: list[str] = []


class FeishuReceiver(_Receiver):
    channel = "feishu"
    type: Literal["feishu", "lark"]
    webhook: WebhookUrl
    secret: SecretStr | None = None


class WeComReceiver(_Receiver):
    channel = "wecom"
    type: Literal["wecom"]
    webhook: WebhookUrl


class WebhookReceiver(_Receiver):
    channel = "webhook"
    type: Literal["webhook"]
    url: WebhookUrl
    headers: dict[str, SecretStr] = {}


class ConsoleReceiver(_Receiver):
    channel = "console"
    type: Literal["console"]


# Every receiver type, listed once: the config union and the channel modules derive from it.
RECEIVERS = (
    DingTalkReceiver,
    SlackReceiver,
    EmailReceiver,
    FeishuReceiver,
    WeComReceiver,
    WebhookReceiver,
    ConsoleReceiver,
)
ReceiverConfig = Annotated[functools.reduce(operator.or_, RECEIVERS), Field(discriminator="type")]


def receiver_channels() -> dict[str, str]:
    """Receiver `type` -> the module of `channels/` that sends for it."""
    return {
        kind: model.channel
        for model in RECEIVERS
        for kind in get_args(model.model_fields["type"].annotation)
    }


# --- operating the bridge: fan-out, self-monitoring, heartbeat (README "Deployment") ---------


class FanoutConfig(_Strict):
    """A dispatcher run (timer payload `{"dispatch": true}`) invokes the worker once per shard."""

    shards: Count(1, 1000)
    # The worker function; default: the function running the dispatcher ($FC_FUNCTION_NAME).
    function: str | None = None
    # FC 3.0 API endpoint; default https://$FC_ACCOUNT_ID.{region}.fc.aliyuncs.com.
    endpoint: str | None = Field(None, pattern=r"^https?://[^/\s]+/?$")


class SelfAlertsConfig(_Strict):
    """ "bridge degraded" / "recovered" notices, sent straight to one receiver."""

    receiver: str = Field(min_length=1)
    failed_runs: Count(1, 1000) = 3  # consecutive failed runs of a target
    parked_longer_than: Seconds(0, 7 * DAY) = 900.0  # oldest alert parked for a receiver


# ---------------------------------------------------------------------------------------------


def parse_rate(text: str) -> tuple[int, float]:
    """`20/min` -> (20, 60.0): at most `count` messages per `period` seconds."""
    count, _, period = text.partition("/")
    names = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hour": 3600.0}
    try:
        seconds = names[period.strip()] if period.strip() in names else parse_duration(period)
        value = _as_int(count)
    except ValueError as exc:
        raise ValueError("not a rate (use e.g. 20/min, 1/s)") from exc
    if not (1 <= value <= 1_000_000 and 0 < seconds <= DAY):
        raise ValueError("not a rate: use 1 to 1000000 messages per 1ms to 1d (e.g. 20/min)")
    return int(value), seconds


class Settings(BaseModel):
    """The configuration. `FLINK_ALERTS_<KEY>` variables override the file's top-level keys: see
    `validate_settings` (pydantic-settings is imported only when such a variable is set)."""

    # validate_default as in pydantic-settings, so both ways of building give the same values.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    region: str = Field(default_factory=lambda: os.environ.get("FC_REGION") or "cn-hangzhou")
    endpoint: str | None = None
    # `file://events.json` replays recorded GetEvents pages instead of calling the API.
    source: str | None = None
    targets: list[TargetConfig] = []  # `targets: auto` = `discover: {}`
    discover: DiscoverConfig | None = None
    accounts: list[AccountConfig] = []
    sts_endpoint: str = "https://sts.aliyuncs.com"
    checkpoint: str = "file://./.flink-alerts"
    start_from: str = "latest"
    page_size: Count(1, 100) = 100
    max_pages: Count(1, 10_000) = 20
    timeout_s: Number(0.001, 600) = 10.0
    concurrency: Count(1, 64) = 16
    # Upper bound of one run outside FC (in FC the function's remaining time is used).
    deadline_s: Number(1, DAY) = 240.0
    # Events this much older than the watermark are still compared by id (late or equal timestamps).
    overlap_window: Seconds(0, 7 * DAY) = 600.0
    timezone: str = "Asia/Shanghai"
    templates_dir: str | None = None
    console_url: str = (
        "https://realtime-compute.console.aliyun.com/regions/{region}/workspaces/{workspace}"
        "/namespaces/{namespace}/operations/stream/{deployment_id}/detail"
    )
    receivers: list[ReceiverConfig] = []
    rules: RulesConfig = RulesConfig()
    routes: tuple[RouteConfig, ...] = ()
    silences: tuple[SilenceConfig, ...] = ()
    delivery: DeliveryConfig = DeliveryConfig()
    fanout: FanoutConfig | None = None
    self_alerts: SelfAlertsConfig | None = None
    # A dead-man's switch called after every successful run; the URL is a secret (never logged).
    heartbeat_url: SecretStr | None = None
    heartbeat_method: Literal["GET", "POST"] = "GET"

    _auto = model_validator(mode="before")(targets_auto)
    _endpoints = field_validator("endpoint", "sts_endpoint")(lambda value: check_endpoint(value))

    @field_validator("console_url")
    @classmethod
    def _check_console_url(cls, value: str) -> str:
        names = {"region": "r", "workspace": "w", "namespace": "n", "deployment_id": "d"}
        try:
            value.format(**names)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"unknown placeholder {exc} (use {{{'}, {'.join(names)}}})") from None
        return value

    @field_validator("start_from")
    @classmethod
    def _check_start(cls, value: str) -> str:
        if value not in ("latest", "earliest"):
            _in_range(parse_duration, format_duration, 0, MAX_LOOKBACK_S, value)
        return value

    @field_validator("checkpoint")
    @classmethod
    def _check_checkpoint(cls, value: str) -> str:
        if not re.match(r"^(file|oss|tablestore)://.+", value):
            raise ValueError(
                "must be file://DIR, oss://BUCKET/PREFIX or tablestore://INSTANCE/TABLE"
            )
        return value

    @model_validator(mode="after")
    def _check_names(self) -> Settings:
        first: dict[str, int] = {}
        for index, target in enumerate(self.targets):
            name = f"{target.workspace}/{target.namespace}"
            if name in first:
                raise ValueError(
                    f"targets[{index}]: {name} is also targets[{first[name]}] (one entry per "
                    "workspace/namespace; list several deployment_ids in one entry)"
                )
            first[name] = index
        names = [receiver.name for receiver in self.receivers]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"receivers[{index}].name: duplicate receiver name {name!r}")
        for path, name in unknown_receivers(self.routes, set(names)):
            raise ValueError(f"{path}: unknown receiver {name!r}")
        if self.self_alerts and self.self_alerts.receiver not in names:
            raise ValueError(
                f"self_alerts.receiver: unknown receiver {self.self_alerts.receiver!r}"
            )
        return self

    @cached_property
    def start(self) -> Start:
        """`start_from`, parsed."""
        return Start.parse(self.start_from)

    @cached_property
    def route_tree(self) -> Route:
        """The routing tree with inheritance resolved; built once per loaded config."""
        return build_tree(self.routes, tuple(receiver.name for receiver in self.receivers))

    @cached_property
    def ruleset(self) -> tuple[Rule, ...]:
        return ruleset(self.rules)

    @property
    def api_endpoint(self) -> str:
        return endpoint_for(self.endpoint or DEFAULT_FLINK_ENDPOINT, self.region)

    def receiver(self, name: str) -> Any:
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        raise ConfigError("receivers", f"no receiver named {name!r}")


def validate_settings(raw: dict[str, Any], environ: dict[str, str]) -> Settings:
    """Settings from the file's keys; environment variables named after a key override it."""
    keys = {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields}
    if not any(name.upper() in keys for name in environ):
        return Settings(**raw)
    return _settings_with_env()(**raw)


@functools.cache
def _settings_with_env() -> type[Settings]:
    """Settings read through pydantic-settings' environment source (it costs ~30 ms to import)."""
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class EnvSettings(Settings, BaseSettings):
        model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            # Environment variables override the YAML file (which arrives as init kwargs).
            return env_settings, init_settings

    return EnvSettings


def expand_env(value: Any, environ: dict[str, str], path: str = "") -> Any:
    """Replace `${NAME}` / `${NAME:-default}` in every string; a missing variable is a ConfigError."""
    if isinstance(value, dict):
        return {
            key: expand_env(item, environ, _join(path, str(key))) for key, item in value.items()
        }
    if isinstance(value, list):
        return [expand_env(item, environ, f"{path}[{index}]") for index, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(path, f"environment variable {name} is not set")

    return _VAR.sub(substitute, value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _error_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for index, part in enumerate(loc):
        # pydantic puts the union member's tag after a list index: ("receivers", 0, "slack", ...).
        after_index = index > 0 and isinstance(loc[index - 1], int) and index < len(loc) - 1
        if isinstance(part, int):
            path += f"[{part}]"
        elif after_index and part in _UNION_TAGS:
            continue
        else:
            path = _join(path, str(part))
    return path


# Tags pydantic puts in error paths after a list index: receiver types and silence kinds.
_UNION_TAGS = {*receiver_channels(), "absolute", "recurring"}


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read, expand and validate the configuration; raises ConfigError with the key path."""
    path = path or os.environ.get("FLINK_ALERTS_CONFIG")
    raw = read_yaml(Path(path)) if path else {}
    environ = dict(os.environ)
    raw = expand_env(raw, environ)
    try:
        settings = validate_settings(raw, environ)
    except ValidationError as exc:
        error = _config_error(exc)
        if isinstance(raw.get("rules"), list) and error.path.startswith("rules.rules["):
            # `rules: [...]` is read as `rules: {rules: [...]}`: name the key as written.
            error = ConfigError(error.path.removeprefix("rules."), error.reason)
        raise error from None
    except ValueError as exc:  # pydantic-settings' SettingsError: a FLINK_ALERTS_<KEY> not JSON
        field = re.search(r'error parsing value for field "(\w+)"', str(exc))
        if not field:
            raise
        raise ConfigError(f"{ENV_PREFIX}{field.group(1)}".upper(), "not valid JSON") from None
    SCRUBBER.configure(settings)
    return settings


def read_yaml(path: Path) -> dict[str, Any]:
    """The file's top-level mapping; an empty, non-UTF-8 or bomb-like file is a ConfigError."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not UTF-8 (byte {exc.start}); save it as UTF-8") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_size(node, str(path))
        raw = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(str(path), f"invalid YAML{where}") from None
    except RecursionError:
        raise ConfigError(str(path), "nested too deeply") from None
    finally:
        loader.dispose()
    if raw is None:
        raise ConfigError(str(path), "the file is empty (it needs at least `targets:`)")
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "the top level must be a mapping of keys")
    return raw


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps an integer too long for Python's int parser as its text."""

    def construct_yaml_int(self, node: yaml.Node) -> Any:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            return node.value  # validation names the key and its allowed range


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _check_size(root: yaml.Node, where: str) -> None:
    """Reject a document whose aliases expand to more than MAX_YAML_NODES nodes, before
    anything is built from it (an alias bomb of 400 bytes expands to billions)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            if sizes[id(node)] < 0:
                raise ConfigError(where, "an alias refers to itself")
            return sizes[id(node)]
        sizes[id(node)] = -1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [item for pair in node.value for item in pair]
        total = 1 + sum(size(child) for child in children)
        if total > MAX_YAML_NODES:
            raise ConfigError(
                where, f"too large once its aliases are expanded (> {MAX_YAML_NODES} values)"
            )
        sizes[id(node)] = total
        return total

    size(root)


def _config_error(exc: ValidationError) -> ConfigError:
    error = exc.errors()[0]
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    where = _error_path(tuple(error["loc"]))
    # Cross-field checks name their own path: "routes[0].receivers: unknown receiver 'x'".
    named = re.match(r"^([A-Za-z_][\w.\[\]]*): (.*)$", message)
    if not where and named:
        where, message = named.groups()
    return ConfigError(where or "config", message)
