"""`flink-alerts run | check | events | render | test-send | checkpoint show|reset`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError, DeliveryError, FlinkAlertsError
from .events import Alert, Batch, FlinkEvent, Target
from .settings import Settings, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .logs import setup_logging

    setup_logging(args.log_level)
    try:
        settings = load_settings(args.config)
        return args.func(settings, args)
    except ConfigError as exc:
        print(f"flink-alerts: configuration error: {exc}", file=sys.stderr)
        return 2
    except FlinkAlertsError as exc:
        print(f"flink-alerts: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flink-alerts", description=__doc__)
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: Callable[[Settings, argparse.Namespace], int], help: str):
        sub = commands.add_parser(name, help=help)
        sub.add_argument("--config", help="YAML file (default: $FLINK_ALERTS_CONFIG)")
        sub.set_defaults(func=func)
        return sub

    run = command("run", cmd_run, "one run over all targets; the last stdout line is the summary")
    run.add_argument(
        "--dry-run", action="store_true", help="print what would be sent; send nothing"
    )
    run.add_argument("--target", action="append", help="WORKSPACE/NAMESPACE (repeatable)")
    command("check", cmd_check, "validate the configuration and render every receiver's template")
    events = command("events", cmd_events, "print events as JSON lines, newest first")
    events.add_argument("--target", required=True, help="WORKSPACE/NAMESPACE")
    events.add_argument("--limit", type=int, default=50)
    events.add_argument("--deployment", help="only this deploymentId")
    render = command("render", cmd_render, "print the exact payload a receiver would get")
    render.add_argument("--receiver", required=True)
    render.add_argument("--events", help="JSON file: a list of events or GetEvents pages")
    test_send = command("test-send", cmd_test_send, "send a clearly marked test alert")
    test_send.add_argument("--receiver", required=True)
    checkpoint = command("checkpoint", cmd_checkpoint, "inspect or reset a target's checkpoint")
    checkpoint.add_argument("action", choices=["show", "reset"])
    checkpoint.add_argument("--target", required=True, help="WORKSPACE/NAMESPACE")
    return parser


def _credentials() -> Any:
    from .credentials import resolve_credentials

    return resolve_credentials()


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from .runner import make_run, select_targets

    deadline = time.monotonic() + settings.deadline_s
    run = make_run(settings, credentials=_credentials, deadline=deadline, dry_run=args.dry_run)
    summary = run.run(select_targets(settings, args.target))
    for error in summary.errors:
        print(f"flink-alerts: {error}", file=sys.stderr)
    print(json.dumps(summary.to_dict(), ensure_ascii=False), flush=True)
    return 0 if summary.ok else 1


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    from .checkpoint import open_store

    open_store(settings.checkpoint, region=settings.region, credentials=lambda: None)
    for receiver in settings.receivers:
        _messages(settings, receiver.name, sample_events())
    print(f"ok: {len(settings.targets)} targets, {len(settings.receivers)} receivers")
    return 0


def cmd_events(settings: Settings, args: argparse.Namespace) -> int:
    from .runner import make_source

    target = _target(args.target)
    source = make_source(settings, credentials=_credentials, deadline=time.monotonic() + 60)
    if hasattr(source, "iter_events"):
        events = source.iter_events(target, limit=args.limit, deployment_id=args.deployment)
    else:
        fetched = source.fetch_new(target, floor=None).events
        events = [
            e
            for e in reversed(fetched)
            if not args.deployment or e.deployment_id == args.deployment
        ]
        events = events[: args.limit]
    for event in events:
        print(json.dumps(event.to_api_json(), ensure_ascii=False))
    return 0


def cmd_render(settings: Settings, args: argparse.Namespace) -> int:
    events = load_events_file(args.events) if args.events else sample_events()
    for message in _messages(settings, args.receiver, events):
        print(message.preview())
    return 0


def cmd_test_send(settings: Settings, args: argparse.Namespace) -> int:
    messages = _messages(settings, args.receiver, sample_events()[:1], test=True)
    channel = _channel(settings, args.receiver)
    for message in messages:
        try:
            answer = channel.send(message)
        except DeliveryError as exc:
            kind = "retryable" if exc.retryable else "permanent"
            print(
                f"flink-alerts: test-send to {args.receiver} failed ({kind}): {exc}",
                file=sys.stderr,
            )
            return 1
        print(f"{args.receiver}: {answer}")
    return 0


def cmd_checkpoint(settings: Settings, args: argparse.Namespace) -> int:
    from .checkpoint import open_store

    target = _target(args.target)
    store = open_store(settings.checkpoint, region=settings.region, credentials=_credentials)
    if args.action == "reset":
        store.reset(target)
        print(
            f"{target.name}: checkpoint reset; the next run starts as a first run ({settings.start_from})"
        )
        return 0
    checkpoint, lease = store.read(target)
    shown = {"where": store.where(target), "lease": lease}
    shown["checkpoint"] = checkpoint.to_dict() if checkpoint else None
    print(json.dumps(shown, ensure_ascii=False, indent=2))
    return 0


def _target(name: str) -> Target:
    workspace, sep, namespace = name.partition("/")
    if not sep or not workspace or not namespace:
        raise ConfigError("--target", f"{name!r} must look like WORKSPACE/NAMESPACE")
    return Target(workspace, namespace)


def _channel(settings: Settings, name: str) -> Any:
    from .channels import make_channel
    from .render import Renderer

    renderer = Renderer(settings.templates_dir, settings.timezone)
    return make_channel(settings.receiver(name), renderer, settings.delivery.timeout_s)


def _messages(
    settings: Settings, receiver: str, events: list[FlinkEvent], test: bool = False
) -> list:
    from .rules import severity

    channel = _channel(settings, receiver)
    target = Target(events[0].workspace, events[0].namespace) if events else Target("-", "-")
    alerts = tuple(Alert(event, severity=severity(event)) for event in events)
    return channel.build(Batch(receiver, target, alerts, test=test))


def sample_events() -> list[FlinkEvent]:
    text = resources.files("flink_alerts").joinpath("samples/sample_events.json").read_text("utf-8")
    return _parse_events(json.loads(text), "built-in samples")


def load_events_file(path: str) -> list[FlinkEvent]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError("--events", f"cannot read {path}: {exc}") from None
    return _parse_events(document, path)


def _parse_events(document: Any, where: str) -> list[FlinkEvent]:
    from .sources import _raw_events

    raws = (
        document
        if isinstance(document, list) and document and "eventId" in document[0]
        else _raw_events(document)
    )
    return [FlinkEvent.from_api(raw) for raw in raws]


if __name__ == "__main__":
    sys.exit(main())
