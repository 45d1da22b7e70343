"""Renderer: automatic escaping per format, filters, template data, template errors."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from flink_alerts.errors import ConfigError
from flink_alerts.events import Batch
from flink_alerts.render import (
    Renderer,
    clip,
    clip_bytes,
    escape_markdown,
    escape_slack,
    load_sample_events,
    plural,
    sample_batch,
    stack_summary,
    with_alerts,
)
from tests.factories import failure_batch

HOSTILE = (
    "boom *[click](http://evil.example/x)* ![img](http://evil.example/p.png) <b>b</b> "
    '<font color=red>red</font> @all @13800000000 <at user_id="all">x</at> <!channel>\n'
    "# heading\n===\n> quote\n[ref]: http://evil.example/ref\n    indented code"
)
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\s*[(\[:]")
HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z!@]")


def make_batch(messages: list[str], *, omitted: int = 0, test: bool = False) -> Batch:
    return failure_batch(messages, names="job-{}", omitted=omitted, test=test)


@pytest.fixture
def renderer() -> Renderer:
    return Renderer()


def render_string(renderer: Renderer, tmp_path: Path, text: str, escape: str, **context) -> str:
    path = tmp_path / "t.j2"
    path.write_text(text, encoding="utf-8")
    return renderer.render(str(path), context, escape=escape)


# --- escaping applies without a filter ---------------------------------------------------------


def test_markdown_escaping_neutralises_links_mentions_headings_and_html(renderer, tmp_path):
    out = render_string(
        renderer, tmp_path, "### Title\n> {{ message }}\n", "markdown", message=HOSTILE
    )
    lines = out.splitlines()
    assert lines[0] == "### Title"  # the template's own markdown is untouched
    body = "\n".join(lines[1:])
    assert not MARKDOWN_LINK.search(body)
    assert not HTML_TAG.search(body)
    assert "@" not in body
    assert not any(line.lstrip("> ").startswith(("#", "=", "-", " ")) for line in lines[1:])
    assert "click" in body and "evil.example" in body  # the text itself stays readable


def test_markdown_escaping_keeps_line_breaks_as_hard_breaks():
    assert escape_markdown("a\nb\r\n  c") == "a  \nb  \nc"


def test_slack_escaping_of_control_characters(renderer, tmp_path):
    out = render_string(renderer, tmp_path, "*{{ m }}*", "slack", m="<!channel> a & b <http://x|y>")
    assert out == "*&lt;!channel&gt; a &amp; b &lt;http://x|y&gt;*"
    assert escape_slack("```x```") == "ˋˋˋxˋˋˋ"


def test_html_escaping(renderer, tmp_path):
    out = render_string(renderer, tmp_path, "<p>{{ m }}</p>", "html", m="<script>x</script> & 'q'")
    assert out.startswith("<p>&lt;script&gt;") and "&amp;" in out and "<script>" not in out


def test_json_mode_writes_json_values(renderer, tmp_path):
    template = '{"m": {{ m }}, "n": {{ n }}, "l": {{ l }}, "b": {{ b }}}'
    out = render_string(
        renderer, tmp_path, template, "json", m='quote " \\ \n 中文', n=3, l=[1], b=True
    )
    assert json.loads(out) == {"m": 'quote " \\ \n 中文', "n": 3, "l": [1], "b": True}


def test_macros_and_safe_values_are_not_escaped_twice(renderer, tmp_path):
    text = "{% macro b(x) %}**{{ x }}**{% endmacro %}{{ b(m) }} {{ 'x' | link(url) }}"
    out = render_string(renderer, tmp_path, text, "markdown", m="[a](b)", url="https://c.example/d")
    assert out == "**［a］(b)** [x](https://c.example/d)"


def test_link_filter_keeps_urls_inert(renderer, tmp_path):
    out = render_string(
        renderer, tmp_path, "{{ 'go' | link(url) }}", "markdown", url="https://x.example/a) [b](c"
    )
    assert out == "[go](https://x.example/a%29%20%5Bb%5D%28c)"
    out = render_string(
        renderer, tmp_path, "{{ 'go' | link(url) }}", "markdown", url="javascript:x"
    )
    assert out == "go"
    out = render_string(
        renderer, tmp_path, "{{ 'go' | link(u) }}", "slack", u="https://x.example/|a>"
    )
    assert out == "<https://x.example/%7Ca%3E|go>"


# --- filters -----------------------------------------------------------------------------------


def test_clip_and_clip_bytes():
    assert clip("abcdef", 4) == "abc…"
    assert clip("abc", 4) == "abc"
    cut = clip_bytes("中文中文中文", 10)
    assert len(cut.encode()) <= 10 and cut.endswith("…") and cut.startswith("中")
    assert clip_bytes("ok", 10) == "ok"


def test_plural():
    assert plural(1, "event") == "1 event"
    assert plural(3, "event") == "3 events"
    assert plural(2, "Flink failure") == "2 Flink failures"


def test_localtime_uses_configured_timezone(tmp_path):
    moment = datetime(2024, 4, 30, 19, 12, 45, tzinfo=timezone.utc)
    assert Renderer().localtime(moment) == "2024-05-01 03:12:45 UTC+8"
    assert Renderer(timezone="UTC").localtime(moment) == "2024-04-30 19:12:45 UTC+0"
    assert Renderer(timezone="Asia/Kolkata").localtime(moment, "%H:%M") == "00:42 UTC+5:30"
    with pytest.raises(ConfigError, match="timezone"):
        Renderer(timezone="Mars/Olympus")


def test_stack_summary_keeps_exception_lines_and_drops_frames():
    message = "\n".join(
        [
            "org.apache.flink.runtime.JobException: Recovery is suppressed",
            *[f"\tat org.apache.Foo.bar{i}(Foo.java:{i})" for i in range(40)],
            "Caused by: org.apache.kafka.common.errors.TimeoutException: Timeout expired",
            "\t... 12 more",
        ]
    )
    assert stack_summary(message) == [
        "JobException: Recovery is suppressed",
        "Caused by: TimeoutException: Timeout expired",
    ]
    long = "\n".join(f"Caused by: E{i}: x" for i in range(20))
    summary = stack_summary(long, max_lines=5)
    assert summary == [
        "Caused by: E0: x",
        "Caused by: E1: x",
        "…",
        "Caused by: E18: x",
        "Caused by: E19: x",
    ]


# --- template data -----------------------------------------------------------------------------


def test_context_for_has_alertmanager_like_keys(renderer):
    context = renderer.context_for(make_batch(["a\nb", "c"], omitted=3, test=True))
    assert context["receiver"] == "r"
    assert context["status"] == "firing" and context["firing"] is True and context["test"] is True
    assert context["target"] == {"workspace": "ws", "namespace": "ns", "name": "ws/ns"}
    assert context["counts"]["total"] == 5 and context["counts"]["shown"] == 2
    assert context["omitted"] == 3 and context["omitted_text"] == "… and 3 more events"
    alert = context["alerts"][0]
    assert alert["deployment_name"] == "job-0" and alert["event_name"] == "JOB_FAILED"
    assert alert["time"] == "2024-05-01 03:12:45 UTC+8"
    assert alert["console_url"].endswith("dep-0") and alert["summary"] == ["a", "b"]
    assert {"severity", "rule", "event_id", "job_id", "message", "headline", "key"} <= set(alert)


def test_context_cuts_messages(renderer):
    context = renderer.context_for(make_batch(["x" * 500]), max_message_chars=100)
    assert len(context["alerts"][0]["message"]) == 100


def test_with_alerts_counts_the_rest_as_omitted():
    batch = with_alerts(make_batch(["a", "b", "c"], omitted=2), 1)
    assert len(batch.alerts) == 1 and batch.omitted == 4


# --- templates: lookup and errors --------------------------------------------------------------


def test_templates_dir_overrides_a_default_by_name(tmp_path):
    (tmp_path / "console.txt.j2").write_text("mine: {{ counts.total }}", encoding="utf-8")
    renderer = Renderer(templates_dir=str(tmp_path))
    out = renderer.render("console.txt.j2", renderer.context_for(make_batch(["a"])), escape="none")
    assert out == "mine: 1"


def test_user_template_can_extend_a_default(tmp_path, renderer):
    path = tmp_path / "ding.md.j2"
    path.write_text('{% extends "dingtalk.md.j2" %}{% block title %}custom{% endblock %}')
    context = renderer.context_for(make_batch(["a"]))
    title = renderer.render_part(
        context, escape="markdown", default="dingtalk.md.j2", template=str(path), block="title"
    )
    text = renderer.render_part(
        context, escape="markdown", default="dingtalk.md.j2", template=str(path), block="text"
    )
    assert title == "custom" and "job-0" in text


def test_template_without_blocks_provides_the_main_part(tmp_path, renderer):
    path = tmp_path / "plain.j2"
    path.write_text("only {{ alerts[0].deployment_name }}")
    context = renderer.context_for(make_batch(["a"]))
    common = {"escape": "markdown", "default": "dingtalk.md.j2", "template": str(path)}
    assert renderer.render_part(context, block="text", main=True, **common) == "only job-0"
    assert "job-0" in renderer.render_part(context, block="title", **common)  # from the default


def test_syntax_error_names_file_and_line(tmp_path, renderer):
    path = tmp_path / "bad.j2"
    path.write_text("line one\n{% for x in %}\n")
    with pytest.raises(ConfigError) as info:
        renderer.render(str(path), {}, escape="none")
    assert "bad.j2:2" in str(info.value)


def test_undefined_variable_names_file_and_line(tmp_path, renderer):
    path = tmp_path / "undef.j2"
    path.write_text("ok\n\n{{ alerts[0].no_such_field }}\n")
    context = renderer.context_for(make_batch(["a"]))
    with pytest.raises(ConfigError) as info:
        renderer.render(str(path), context, escape="markdown")
    assert "undef.j2:3" in str(info.value) and "no_such_field" in str(info.value)


def test_missing_template(renderer):
    with pytest.raises(ConfigError, match="template not found"):
        renderer.render("no/such/file.j2", {}, escape="none")


def test_unknown_escape_mode(renderer):
    with pytest.raises(ValueError):
        renderer.render("console.txt.j2", {}, escape="rot13")


# --- samples -----------------------------------------------------------------------------------


def test_sample_events_are_hostile_and_realistic():
    raws = load_sample_events()
    messages = "\n".join(raw["message"] for raw in raws)
    assert len(raws) >= 5
    assert "[click here](http://evil" in messages and "@all" in messages and "<font" in messages
    assert "Caused by:" in messages and "作业" in messages
    batch = sample_batch("r", console_url="https://c.example/{workspace}/{deployment_id}")
    assert batch.test and len(batch.alerts) == len(raws)
    assert batch.alerts[0].deployment_name == "orders-etl"
    assert batch.alerts[0].console_url.startswith("https://c.example/")


def test_events_file_may_be_a_getevents_page(tmp_path):
    path = tmp_path / "page.json"
    path.write_text(json.dumps({"data": load_sample_events()[:2]}))
    assert len(load_sample_events(path)) == 2
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError):
        load_sample_events(tmp_path / "bad.json")


def test_events_file_may_be_recorded_pages_or_the_events_command_output(tmp_path):
    # examples/events.json is what `source: file://` replays: {"pages": [GetEvents pages]}.
    recorded = {"pages": [{"data": load_sample_events()[:2]}, {"data": load_sample_events()[2:3]}]}
    (tmp_path / "recorded.json").write_text(json.dumps(recorded))
    assert len(load_sample_events(tmp_path / "recorded.json")) == 3
    lines = "\n".join(json.dumps(event) for event in load_sample_events()[:4])  # `events` > file
    (tmp_path / "events.jsonl").write_text(lines + "\n")
    assert len(load_sample_events(tmp_path / "events.jsonl")) == 4


@pytest.mark.parametrize("content", ["[]", '{"pages": 3}', '{"data": []}', '{"eventId": "x"}'])
def test_events_file_without_events_is_an_error_not_an_empty_message(tmp_path, content):
    (tmp_path / "empty.json").write_text(content)
    with pytest.raises(ConfigError, match="no events"):
        load_sample_events(tmp_path / "empty.json")


@pytest.mark.parametrize(
    ("template", "escape", "block"),
    [
        ("dingtalk.md.j2", "markdown", "text"),
        ("dingtalk.md.j2", "text", "plain"),
        ("slack.mrkdwn.j2", "slack", "body"),
        ("feishu.md.j2", "markdown", "body"),
        ("wecom.md.j2", "markdown", None),
        ("email.html.j2", "html", "html"),
        ("email.html.j2", "none", "text"),
        ("console.txt.j2", "none", None),
        ("webhook.json.j2", "json", None),
    ],
)
def test_every_default_template_renders_samples_resolved_and_test(
    renderer, template, escape, block
):
    for status, test in (("firing", False), ("resolved", True)):
        batch = sample_batch("r", console_url="https://c.example/{deployment_id}", test=test)
        batch = Batch(**{**batch.__dict__, "status": status, "omitted": 2})
        out = renderer.render(template, renderer.context_for(batch), escape=escape, block=block)
        assert "orders-etl" in out and "2 more events" in out or template == "webhook.json.j2"
        if template == "webhook.json.j2":
            assert json.loads(out)["omitted"] == 2
