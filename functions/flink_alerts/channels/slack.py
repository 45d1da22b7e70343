"""Slack incoming webhook: Block Kit (header + mrkdwn sections) with a `text` fallback."""

from __future__ import annotations

from typing import Any

from ..errors import DeliveryError
from ..render import clip
from .base import Channel, Message
from .http import check_status, excerpt, json_body, mask_url, post, url_secrets

MAX_BLOCKS = 50
MAX_HEADER_CHARS = 150
MAX_SECTION_CHARS = 3_000
MAX_TEXT_CHARS = 40_000
FENCE = "```"


def pack_sections(text: str, limit: int = MAX_SECTION_CHARS) -> list[str]:
    """Pack the paragraphs of a mrkdwn text into pieces of at most `limit` characters."""
    sections: list[str] = []
    current = ""
    for paragraph in _paragraphs(text):
        for piece in _split_long(paragraph, limit):
            if current and len(current) + 2 + len(piece) <= limit:
                current = f"{current}\n\n{piece}"
            else:
                if current:
                    sections.append(current)
                current = piece
    if current:
        sections.append(current)
    return sections


def _paragraphs(text: str) -> list[str]:
    """Split at blank lines, except inside ``` code blocks."""
    paragraphs: list[str] = []
    lines: list[str] = []
    in_fence = False
    for line in text.split("\n"):
        if line.strip() == "" and not in_fence:
            if lines:
                paragraphs.append("\n".join(lines))
            lines = []
            continue
        lines.append(line)
        in_fence ^= line.count(FENCE) % 2 == 1
    if lines:
        paragraphs.append("\n".join(lines))
    return paragraphs


def _split_long(paragraph: str, limit: int) -> list[str]:
    """Cut one paragraph at line ends (or anywhere in a very long line), keeping ``` balanced."""
    if len(paragraph) <= limit:
        return [paragraph]
    room = limit - 2 * (len(FENCE) + 1)  # space to close and reopen a code block
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    in_fence = False
    for line in _short_lines(paragraph.split("\n"), room):
        if current and size + len(line) + 1 > room:
            pieces.append("\n".join(current) + (f"\n{FENCE}" if in_fence else ""))
            current, size = ([FENCE] if in_fence else []), (len(FENCE) + 1 if in_fence else 0)
        current.append(line)
        size += len(line) + 1
        in_fence ^= line.count(FENCE) % 2 == 1
    if current:
        pieces.append("\n".join(current))
    return pieces


def _short_lines(lines: list[str], room: int) -> list[str]:
    return [line[i : i + room] for line in lines for i in range(0, max(len(line), 1), room)]


class SlackChannel(Channel):
    type = "slack"
    default_rate = (1, 1.0)
    template = "slack.mrkdwn.j2"
    main_blocks = ("body",)
    max_alerts = 50
    max_message_chars = 1_000

    def send(self, message: Message) -> str:
        url = self.config.webhook.get_secret_value()
        secrets = url_secrets(url)
        body = json_body(message.payload)
        response = post(url, body, channel=self.label, timeout_s=self.timeout_s)
        check_status(response, channel=self.label, url=url)
        answer = excerpt(response, secrets)
        if answer != "ok":
            # Slack answers errors with 4xx; a 2xx that is not "ok" means something unexpected.
            raise DeliveryError(
                f"{self.label} {mask_url(url)}: unexpected answer {answer!r}", retryable=False
            )
        return answer

    def payload(self, context: dict[str, Any]) -> dict[str, Any]:
        header = " ".join(self.part(context, "header").split())
        body = self.part(context, "body", "slack")
        fallback = self.part(context, "fallback", "slack") or header
        blocks: list[dict[str, Any]] = []
        if header:
            text = {"type": "plain_text", "text": clip(header, MAX_HEADER_CHARS), "emoji": True}
            blocks.append({"type": "header", "text": text})
        blocks += [_section(section) for section in pack_sections(body)]
        return {"text": clip(fallback, MAX_TEXT_CHARS), "blocks": blocks}

    def load(self, payload: dict[str, Any]) -> float:
        return len(payload["blocks"]) / MAX_BLOCKS

    def cut(self, payload: dict[str, Any]) -> dict[str, Any]:
        cut = _section("_(cut: too long)_")
        payload["blocks"] = payload["blocks"][: MAX_BLOCKS - 1] + [cut]
        return payload


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


CHANNEL = SlackChannel
