"""Jinja rendering of alert batches, with escaping that template authors cannot forget.

Every `{{ expression }}` goes through the environment's `finalize` hook, which escapes the value
for the target format (HTML, Slack mrkdwn, chat markdown, JSON). Template text written by the
author, macro output and values marked safe (`|safe`, or `Markup` from the link filters) pass
untouched. Autoescape is switched on in every mode only so that Jinja treats macro and block
output as already-escaped `Markup` instead of escaping it twice.
"""

from __future__ import annotations

import json
import re
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from markupsafe import Markup
from markupsafe import escape as html_escape

from .errors import ConfigError
from .events import Alert, Batch, FlinkEvent, Target

if TYPE_CHECKING:
    import jinja2

# jinja2 is imported only when something renders: a run without alerts never pays for it.

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"
SAMPLE_EVENTS = Path(__file__).parent / "samples" / "sample_events.json"
ESCAPES = ("html", "slack", "markdown", "text", "json", "none")

# Characters that chat markdown (DingTalk, Feishu, WeCom) would interpret, mapped to look-alikes.
# Look-alikes rather than backslashes: these renderers document no escape syntax, so a backslash
# could show up literally while the syntax still fires.
_MARKDOWN_MAP = str.maketrans(
    {
        "<": "＜",  # HTML tags (<font>, <a>, Feishu <at id=all>, WeCom <@user>) and autolinks
        ">": "＞",  # same, and blockquotes
        "[": "［",  # links and images: [x](y), ![x](y), reference definitions
        "]": "］",
        "@": "＠",  # @all, @mobile, @userid mentions
        "#": "＃",  # headings
        "*": "∗",  # bold, italic, list bullets
        "`": "ˋ",  # code spans that would swallow the rest of the layout
        "~": "∼",  # strike-through
        "\\": "＼",  # a trailing backslash would escape the template's own syntax
    }
)
_LINE_START = str.maketrans({"-": "－", "+": "＋", "=": "＝", "|": "｜"})
_MENTION_MAP = str.maketrans({"@": "＠", "<": "＜", ">": "＞"})
_FRAME = re.compile(r"^\s*(at |\.\.\. \d+ (more|common frames omitted))")
# "Caused by: org.apache.kafka.common.errors.TimeoutException: ..." -> the package goes.
_QUALIFIED_EXCEPTION = re.compile(
    r"^((?:Caused by|Suppressed): )?(?:[a-z_][\w]*\.)+(?=[A-Z][\w$]*(?::|$))"
)

PLURALS = {"event": "events", "failure": "failures", "deployment": "deployments"}


# --- escaping -----------------------------------------------------------------------------------


def escape_markdown(text: str) -> str:
    """Neutralise chat markdown: no links, images, headings, HTML, mentions or code spans."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    escaped = []
    for index, line in enumerate(lines):
        # Indentation after a line break would start a code block.
        line = (line.lstrip() if index else line).translate(_MARKDOWN_MAP)
        # Setext underlines (=== / ---), list bullets and tables only matter at the line start.
        escaped.append(line[:1].translate(_LINE_START) + line[1:])
    # A line break inside a value stays a line break (two trailing spaces: a markdown hard break).
    return "  \n".join(escaped)


def escape_slack(text: str) -> str:
    """Slack mrkdwn: &, < and > are control characters (<!channel>, <url|text>, <@U123>)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # Keep a value from closing the template's ``` code block.
    return text.replace("```", "ˋˋˋ")


def escape_text(text: str) -> str:
    """Plain chat text (DingTalk text messages): only mentions are special."""
    return text.translate(_MENTION_MAP)


def _finalizer(mode: str) -> Callable[[Any], Any]:
    import jinja2

    def as_text(value: Any) -> str:
        return "" if value is None else str(value)

    escapers: dict[str, Callable[[str], str]] = {
        "html": lambda text: str(html_escape(text)),
        "slack": escape_slack,
        "markdown": escape_markdown,
        "text": escape_text,
        "none": lambda text: text,
    }

    def finalize(value: Any) -> Any:
        if isinstance(value, Markup):
            return value
        if isinstance(value, jinja2.Undefined):
            str(value)  # StrictUndefined raises here, naming the variable
        if mode == "json":
            return Markup(json.dumps(value, ensure_ascii=False, default=str))
        return Markup(escapers[mode](as_text(value)))

    return finalize


# --- filters ------------------------------------------------------------------------------------


def clip(text: Any, limit: int, marker: str = "…") -> str:
    """At most `limit` characters, ending with `marker` when cut."""
    text = str(text)
    if len(text) <= limit:
        return text
    return text[: max(limit - len(marker), 0)].rstrip() + marker


def clip_bytes(text: Any, limit: int, marker: str = "…") -> str:
    """At most `limit` UTF-8 bytes, never cutting a character in half."""
    text = str(text)
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = max(limit - len(marker.encode("utf-8")), 0)
    return data[:room].decode("utf-8", errors="ignore").rstrip() + marker


def excerpt(text: Any, max_lines: int, max_chars: int) -> str:
    """The first `max_lines` lines (at most `max_chars`), then how many lines were left out."""
    lines = str(text).splitlines()
    rest = len(lines) - max_lines
    head = clip("\n".join(lines[:max_lines]), max_chars)
    return head + (f"\n… {plural(rest, 'more line')}" if rest > 0 else "")


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`3 | plural("event")` -> "3 events"."""
    word = singular if count == 1 else plural_form or PLURALS.get(singular, singular + "s")
    return f"{count} {word}"


def stack_summary(message: Any, max_lines: int = 8, max_line_chars: int = 300) -> list[str]:
    """The lines of a Java stack trace worth reading on a phone.

    Keeps the exception lines (the first one and each `Caused by:`, without the package name) and
    any plain text, drops the `at ...` frames. The root cause is usually the last `Caused by:`, so when there are too many
    lines the middle ones go.
    """
    lines = [line.strip() for line in str(message).splitlines()]
    kept = [
        clip(_QUALIFIED_EXCEPTION.sub(r"\1", line), max_line_chars)
        for line in lines
        if line and not _FRAME.match(line)
    ]
    if len(kept) > max_lines >= 2:
        tail = (max_lines - 1) // 2
        head = max_lines - 1 - tail
        kept = kept[:head] + ["…"] + (kept[-tail:] if tail else [])
    return kept


def safe_url(url: Any) -> str:
    """An http(s) URL with the characters that could end a markdown or mrkdwn link encoded."""
    text = str(url).strip()
    if urlsplit(text).scheme not in ("http", "https"):
        return ""
    return quote(text, safe=":/?#@!$&'*+,;=%-._~")


def markdown_link(text: Any, url: Any) -> Markup:
    """[text](url) for chat markdown, with the text escaped and the URL made inert."""
    target = safe_url(url)
    label = escape_markdown(str(text))
    return Markup(f"[{label}]({target})" if target else label)


def slack_link(text: Any, url: Any) -> Markup:
    """<url|text> for Slack mrkdwn."""
    target = safe_url(url).replace("|", "%7C")
    label = escape_slack(str(text)).replace("|", "¦")
    return Markup(f"<{target}|{label}>" if target else label)


# --- the renderer -------------------------------------------------------------------------------


def _load_path(template: str) -> tuple[str, str, Callable[[], bool]] | None:
    """A template given as a file path (a receiver's `template: ./my.md.j2`)."""
    path = Path(template)
    if not path.is_file():
        return None
    mtime = path.stat().st_mtime
    return path.read_text(encoding="utf-8"), str(path), lambda: path.stat().st_mtime == mtime


class Renderer:
    def __init__(self, templates_dir: str | None = None, timezone: str = "Asia/Shanghai") -> None:
        try:
            self.tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError("timezone", f"unknown time zone {timezone!r}") from None
        self.timezone = timezone
        self.templates_dir = templates_dir
        self._envs: dict[str, jinja2.Environment] = {}

    # -- templates --

    def environment(self, escape: str) -> jinja2.Environment:
        if escape not in ESCAPES:
            raise ValueError(f"unknown escape mode {escape!r} (one of {', '.join(ESCAPES)})")
        if escape not in self._envs:
            import jinja2

            search = [self.templates_dir] if self.templates_dir else []
            loader = jinja2.ChoiceLoader(
                [
                    jinja2.FileSystemLoader([*search, str(PACKAGE_TEMPLATES)]),
                    jinja2.FunctionLoader(_load_path),
                ]
            )
            env = jinja2.Environment(
                loader=loader,
                autoescape=True,
                finalize=_finalizer(escape),
                undefined=jinja2.StrictUndefined,
                keep_trailing_newline=False,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.filters.update(self._filters(escape))
            self._envs[escape] = env
        return self._envs[escape]

    def _filters(self, escape: str) -> dict[str, Callable[..., Any]]:
        link = slack_link if escape == "slack" else markdown_link
        return {
            "localtime": self.localtime,
            "clip": clip,
            "clip_bytes": clip_bytes,
            "plural": plural,
            "stack_summary": stack_summary,
            "link": link,
            "safe_url": safe_url,
        }

    def has_block(self, template: str, block: str) -> bool:
        return block in self._load(template, "none").blocks

    def render(
        self, template: str, context: dict[str, Any], *, escape: str, block: str | None = None
    ) -> str:
        """Render a template (a name on the search path or a file path), or one of its blocks."""
        import jinja2

        compiled = self._load(template, escape)
        try:
            if block is None:
                return compiled.render(context)
            if block not in compiled.blocks:
                raise ConfigError(template, f"template has no block {block!r}")
            return "".join(compiled.blocks[block](compiled.new_context(context)))
        except jinja2.TemplateError as exc:
            raise _template_error(exc, compiled.filename or template) from None

    def render_part(
        self,
        context: dict[str, Any],
        *,
        escape: str,
        default: str,
        template: str | None = None,
        block: str | None = None,
        main: bool = False,
    ) -> str:
        """One part of a channel's message, stripped.

        A receiver's own `template` provides the part when it defines `block`; a template without
        that block still provides the `main` part (its whole output). Everything else comes from
        the channel's `default` template.
        """
        if template and block is None:
            return self.render(template, context, escape=escape).strip()
        if template and self.has_block(template, block or ""):
            return self.render(template, context, escape=escape, block=block).strip()
        if template and main:
            return self.render(template, context, escape=escape).strip()
        return self.render(default, context, escape=escape, block=block).strip()

    def _load(self, template: str, escape: str) -> jinja2.Template:
        import jinja2

        try:
            return self.environment(escape).get_template(template)
        except jinja2.TemplateNotFound as exc:
            raise ConfigError(template, f"template not found: {exc.name}") from None
        except jinja2.TemplateSyntaxError as exc:
            where = f"{exc.filename or exc.name or template}:{exc.lineno}"
            raise ConfigError(where, f"template syntax error: {exc.message}") from None

    # -- data --

    def localtime(self, value: datetime, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        """A time in the configured zone, with its UTC offset (`2024-05-01 03:12:45 UTC+8`);
        a time the zone cannot show (year 9999 plus 8 hours) is shown as it came."""
        try:
            local = value.astimezone(self.tz)
        except (OverflowError, ValueError):
            return value.isoformat()
        return f"{local.strftime(fmt)} {_offset_label(local.utcoffset())}"

    def context_for(
        self,
        batch: Batch,
        *,
        max_message_chars: int = 10_000,
        max_message_lines: int | None = None,
        alerts: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Alertmanager-like template data. Event messages are cut to `max_message_chars` (and
        `max_message_lines`). `alerts` are the batch's alert contexts when already built."""
        if alerts is None:
            alerts = self.alert_contexts(batch.alerts, max_message_chars, max_message_lines)
        shown = len(alerts)
        total = shown + batch.omitted
        return {
            "receiver": batch.receiver,
            "status": batch.status,
            "firing": batch.status == "firing",
            "test": batch.test,
            "target": {
                "workspace": batch.target.workspace,
                "namespace": batch.target.namespace,
                "name": batch.target.name,
            },
            "alerts": alerts,
            "counts": {
                "total": total,
                "shown": shown,
                "omitted": batch.omitted,
                "deployments": len({a["deployment_name"] for a in alerts}),
                "by_event": dict(Counter(a["event_name"] for a in alerts)),
                "by_severity": dict(Counter(a["severity"] for a in alerts)),
            },
            "omitted": batch.omitted,
            "omitted_text": f"… and {plural(batch.omitted, 'more event')}" if batch.omitted else "",
            "run_time": batch.run_time,
            "run_time_text": self.localtime(batch.run_time),
            "timezone": self.timezone,
        }

    def alert_contexts(
        self,
        alerts: Iterable[Alert],
        max_message_chars: int = 10_000,
        max_message_lines: int | None = None,
    ) -> list[dict[str, Any]]:
        return [self._alert_context(a, max_message_chars, max_message_lines) for a in alerts]

    def _alert_context(
        self, alert: Alert, max_message_chars: int, max_message_lines: int | None
    ) -> dict[str, Any]:
        event = alert.event
        summary = self._notes(alert) + stack_summary(event.message)
        if alert.extra.get("cause"):
            summary.append(f"Cause: {clip(alert.extra['cause'], 600)}")
        if max_message_lines is None:
            message = clip(event.message, max_message_chars)
        else:
            message = excerpt(event.message, max_message_lines, max_message_chars)
        return {
            "key": alert.key,
            "event_id": event.event_id,
            "event_name": event.event_name,
            "created_at": event.created_at,
            "time": self.localtime(event.created_at),
            "workspace": event.workspace,
            "namespace": event.namespace,
            "deployment_id": event.deployment_id,
            "deployment_name": alert.deployment_name or event.deployment_id or "unknown deployment",
            "job_id": event.job_id,
            "message": message,
            "summary": summary,
            "headline": (f"[{event.note}] " if event.note else "")
            + (summary[0] if summary else ""),
            "note": event.note,
            "console_url": alert.console_url,
            "severity": alert.severity,
            "rule": alert.rule,
            "count": max(int(alert.extra.get("count") or 1), 1),  # events this alert stands for
            "cause": str(alert.extra.get("cause", "")),
            "extra": dict(alert.extra),
        }

    def _notes(self, alert: Alert) -> list[str]:
        """A digest says how many events it stands for (flap folding)."""
        count, since = alert.extra.get("count", 0), alert.extra.get("since", "")
        if count <= 1:
            return []
        when = (
            f" since {self.localtime(datetime.fromisoformat(since), '%m-%d %H:%M')}"
            if since
            else ""
        )
        return [f"{count} events{when}, the last one:"]


def _offset_label(offset: timedelta | None) -> str:
    minutes = int((offset or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def _template_error(exc: jinja2.TemplateError, filename: str) -> ConfigError:
    """Name the template file and line: Jinja puts template lines into the traceback."""
    line = getattr(exc, "lineno", None)
    if line is None:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
        line = frames[-1].lineno if frames else None
    where = f"{filename}:{line}" if line else filename
    return ConfigError(where, f"template error: {exc.message or exc}")


# --- sample events ------------------------------------------------------------------------------


def load_sample_events(path: str | Path | None = None) -> list[dict[str, Any]]:
    """Raw GetEvents-style events: the built-in samples, or a file: a list of events, JSON lines
    (what `flink-alerts events` prints), a GetEvents page or a recording (`{"pages": [...]}`)."""
    from .sources import raw_events

    source = Path(path) if path else SAMPLE_EVENTS
    try:
        data = _json_or_json_lines(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path or "samples"), f"cannot read events: {exc}") from None
    if isinstance(data, dict):
        data = raw_events(data)
    if not isinstance(data, list) or not data:
        raise ConfigError(
            str(path), "no events: give a list of events, JSON lines or GetEvents pages"
        )
    return data


def _json_or_json_lines(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2:
            raise
        return [json.loads(line) for line in lines]


def sample_batch(
    receiver: str,
    raw_events: Iterable[dict[str, Any]] | None = None,
    *,
    console_url: str = "",
    region: str = "cn-hangzhou",
    test: bool = True,
    run_time: datetime | None = None,
) -> Batch:
    """A batch of alerts from raw events, for `flink-alerts render` and `test-send`.

    `console_url` may use {region}, {workspace}, {namespace}, {deployment_id} (like the settings'
    console_url). A raw event may carry a non-API `deploymentName` to stand in for enrichment.
    """
    raws = list(load_sample_events() if raw_events is None else raw_events)
    alerts = []
    for raw in raws:
        event = FlinkEvent.from_api(raw, workspace="sample-workspace", namespace="default")
        url = console_url.format(
            region=region,
            workspace=event.workspace,
            namespace=event.namespace,
            deployment_id=event.deployment_id,
        )
        name = str(raw.get("deploymentName") or "")
        alerts.append(Alert(event=event, deployment_name=name, console_url=url))
    first = alerts[0].event if alerts else None
    target = Target(
        workspace=first.workspace if first else "sample-workspace",
        namespace=first.namespace if first else "default",
    )
    return Batch(
        receiver=receiver,
        target=target,
        alerts=tuple(alerts),
        run_time=run_time or datetime.now(timezone.utc),
        test=test,
    )


def with_alerts(batch: Batch, shown: int) -> Batch:
    """The batch showing only its first `shown` alerts; the rest are counted as omitted."""
    hidden = len(batch.alerts) - shown
    return replace(batch, alerts=batch.alerts[:shown], omitted=batch.omitted + hidden)
