"""`flink-alerts run | targets | check | events | render | test-send | checkpoint show|reset`
(a target's record, the `alerting` record or a receiver's)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, TextIO

from .errors import CheckpointError, ConfigError, DeliveryError, FlinkAlertsError
from .events import Target
from .scrub import scrub
from .settings import Settings, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .logs import setup_logging

    setup_logging(args.log_level)
    try:
        settings = load_settings(_config_path(args.config))
        return args.func(settings, args)
    except ConfigError as exc:
        _complain(f"configuration error: {exc}")
        return 2
    except FlinkAlertsError as exc:
        _complain(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader left (`| head`): stop quietly, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 141
    except Exception as exc:  # a bug: one line, the traceback only when asked for
        if args.log_level == "DEBUG":
            raise
        _complain(f"unexpected {type(exc).__name__}: {exc} (rerun with --log-level DEBUG)")
        return 1


def _say(text: str, file: TextIO | None = None) -> None:
    """Every line the CLI prints: scrubbed of secrets, since much of it quotes servers."""
    print(scrub(text), file=file or sys.stdout, flush=True)


def _complain(text: str) -> None:
    _say(f"flink-alerts: {' '.join(text.split())}", sys.stderr)


def _config_path(path: str | None) -> str:
    path = path or os.environ.get("FLINK_ALERTS_CONFIG")
    if not path:
        raise ConfigError(
            "--config", "no configuration: pass --config FILE or set FLINK_ALERTS_CONFIG"
        )
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flink-alerts",
        description="Failures of Flink jobs on Alibaba Cloud to DingTalk, Slack, email and more.",
    )
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
    command("targets", cmd_targets, "print the resolved targets and where each came from")
    routes = command(
        "routes", cmd_routes, "show the rule, routes, receivers and silence for an event"
    )
    routes.add_argument(
        "--event",
        required=True,
        help='JSON like {"eventName": ..., "message": ..., "namespace": ..., "deploymentId": ...}',
    )
    routes.add_argument("--at", help="ISO-8601 time to test silences at (default: now)")
    command("check", cmd_check, "validate the configuration and render every receiver's template")
    events = command("events", cmd_events, "print events as JSON lines, newest first")
    events.add_argument("--target", required=True, help="WORKSPACE/NAMESPACE")
    events.add_argument("--limit", type=_positive_int, default=50)
    events.add_argument("--deployment", help="only this deploymentId")
    render = command("render", cmd_render, "print the exact payload a receiver would get")
    render.add_argument("--receiver", required=True)
    render.add_argument(
        "--events", help="a JSON list of events, what `events` prints, or GetEvents pages"
    )
    test_send = command("test-send", cmd_test_send, "send a clearly marked test alert")
    test_send.add_argument("--receiver", required=True)
    checkpoint = command("checkpoint", cmd_checkpoint, "inspect or reset a stored record")
    checkpoint.add_argument("action", choices=["show", "reset"])
    record = checkpoint.add_mutually_exclusive_group(required=True)
    record.add_argument("--target", help="a target's record: WORKSPACE/NAMESPACE")
    record.add_argument(
        "--record", choices=["alerting"], help="incidents, notification log, planned event ids"
    )
    record.add_argument("--receiver", help="a receiver's record: pending notices, rate limit")
    return parser


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def _credentials() -> Any:
    from .credentials import resolve_credentials

    return resolve_credentials()


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from .fleet.resolve import run_fleet
    from .runner import make_run

    deadline = time.monotonic() + settings.deadline_s
    run = make_run(settings, credentials=_credentials, deadline=deadline, dry_run=args.dry_run)
    summary = run_fleet(run, _credentials, args.target)
    for error in summary.errors:
        _complain(error)
    _say(json.dumps(summary.to_dict(), ensure_ascii=False))
    return 0 if summary.ok else 1


def cmd_targets(settings: Settings, args: argparse.Namespace) -> int:
    from .checkpoint import open_store
    from .fleet.resolve import resolve_fleet

    store = open_store(settings.checkpoint, region=settings.region, credentials=_credentials)
    fleet = resolve_fleet(settings, store, _credentials)
    for target, origin in fleet.entries:
        shown = {
            "target": target.name,
            "region": target.region or settings.region,
            "account": target.account or "own",
            "start_from": target.start_from or settings.start_from,
            "origin": origin,
        }
        _say(json.dumps(shown, ensure_ascii=False))
    for problem in fleet.problems:
        _complain(problem)
    return 1 if fleet.problems else 0


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    from .channels import preview
    from .checkpoint import parse_location
    from .function_compute import in_function_compute

    parse_location(settings.checkpoint, region=settings.region, in_fc=in_function_compute())
    renderer = _renderer(settings)
    for receiver in settings.receivers:
        preview(receiver, renderer, _sample_batch(settings, receiver.name, None, test=False))
    from .fleet.discovery import configured, scopes

    found = scopes(settings)
    accounts = len({scope.account for scope in found})
    discovery = f", discovery in {len(found)} region(s) of {accounts} account(s)" if found else ""
    routes = sum(1 for _ in settings.route_tree.walk()) - 1
    print(
        f"ok: {len(configured(settings))} targets{discovery}, {len(settings.receivers)} receivers, "
        f"{len(settings.ruleset)} rules, {routes} routes, {len(settings.silences)} silences"
    )
    return 0


def cmd_routes(settings: Settings, args: argparse.Namespace) -> int:
    from .alerting.explain import event_from_json, explain

    try:
        raw = json.loads(args.event)
    except ValueError as exc:
        raise ConfigError("--event", f"not JSON: {exc}") from None
    now = _parse_at(args.at)
    event, name = event_from_json(raw, now)
    workspaces = {t.workspace for t in settings.targets if t.namespace == event.namespace}
    if not event.workspace and len(workspaces) == 1:
        event = replace(event, workspace=workspaces.pop())
    lines = explain(
        event,
        name,
        rules=settings.ruleset,
        tree=settings.route_tree,
        silences=settings.silences,
        now=now,
    )
    print("\n".join(lines))
    return 0


def _parse_at(text: str | None) -> datetime:
    if not text:
        return datetime.now(timezone.utc)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError("--at", f"not an ISO-8601 time: {text!r}") from None
    if at.tzinfo is None:
        raise ConfigError("--at", "give an offset, e.g. 2026-05-01T02:00:00+08:00")
    return at


def cmd_events(settings: Settings, args: argparse.Namespace) -> int:
    from .runner import make_source

    target = _fleet_target(settings, args.target)
    source = make_source(settings, credentials=_credentials, deadline=time.monotonic() + 60)
    events = source.iter_events(target, limit=args.limit, deployment_id=args.deployment)
    for event in events:
        _say(json.dumps(event.to_api_json(), ensure_ascii=False))
    return 0


def cmd_render(settings: Settings, args: argparse.Namespace) -> int:
    from .channels import preview

    batch = _sample_batch(settings, args.receiver, args.events, test=False)
    for text in preview(settings.receiver(args.receiver), _renderer(settings), batch):
        _say(text)
    return 0


def cmd_test_send(settings: Settings, args: argparse.Namespace) -> int:
    from .channels import deliver

    batch = _sample_batch(settings, args.receiver, None, test=True, limit=1)
    receiver = settings.receiver(args.receiver)
    try:
        answers = deliver(receiver, _renderer(settings), batch, settings.delivery.timeout_s)
    except DeliveryError as exc:
        kind = "retryable" if exc.retryable else "permanent"
        _complain(f"test-send to {args.receiver} failed ({kind}): {exc}")
        return 1
    for answer in answers:
        _say(f"{args.receiver}: {answer}")
    return 0


def cmd_checkpoint(settings: Settings, args: argparse.Namespace) -> int:
    from .checkpoint import open_store

    store = open_store(settings.checkpoint, region=settings.region, credentials=_credentials)
    if args.target is None:
        return _notification_record(settings, store, args)
    target = _target(args.target)
    if args.action == "reset":
        if not store.reset(target):
            raise CheckpointError(
                f"{target.name}: no checkpoint at {store.where(target)}, nothing reset "
                "(is the target right? `flink-alerts targets` lists them)"
            )
        print(
            f"{target.name}: checkpoint reset; the next run starts as a first run ({settings.start_from})"
        )
        return 0
    checkpoint, lease = store.read(target)
    shown = {"where": store.where(target), "lease": lease}
    shown["checkpoint"] = checkpoint.to_dict() if checkpoint else None
    _say(json.dumps(shown, ensure_ascii=False, indent=2))
    return 0


def _notification_record(settings: Settings, store: Any, args: argparse.Namespace) -> int:
    """`checkpoint show|reset --record alerting | --receiver NAME`."""
    from .alerting.records import AlertingRecord, ReceiverRecord
    from .checkpoint.store import RecordStore
    from .notify import ALERTING_KEY, receiver_key

    records = RecordStore(store.backend, store.owner, local=store.local)
    if args.receiver is None:
        key, empty = ALERTING_KEY, AlertingRecord().to_dict()
        dropped = "incidents, notification log and planned event ids forgotten: open incidents "
        dropped += "alert as new, events still in the late window may be counted again"
    else:
        key, empty = receiver_key(args.receiver), ReceiverRecord(args.receiver).to_dict()
        dropped = f"{_known_receiver(settings, records, args.receiver, key)} pending alerts dropped"
    where = f"{store.backend.describe()} key {key}"
    if args.action == "reset":
        records.reset(key, empty)
        _say(f"{where}: reset; {dropped}")
        return 0
    data, lease = records.inspect(key)
    _say(json.dumps({"where": where, "lease": lease, "record": data}, ensure_ascii=False, indent=2))
    return 0


def _known_receiver(settings: Settings, records: Any, name: str, key: str) -> int:
    """How many alerts wait for `name`; a ConfigError for a name neither configured nor stored."""
    from .errors import CheckpointError

    configured = [receiver.name for receiver in settings.receivers]
    try:
        data, _ = records.inspect(key)
    except CheckpointError:
        return 0  # unreadable: what reset is for
    if data is None and name not in configured:
        raise ConfigError(
            "--receiver", f"no receiver {name!r} (configured: {', '.join(configured) or 'none'})"
        )
    return len((data or {}).get("outbox") or [])


def _target(name: str) -> Target:
    workspace, sep, namespace = name.partition("/")
    if not sep or not workspace or not namespace:
        raise ConfigError("--target", f"{name!r} must look like WORKSPACE/NAMESPACE")
    return Target(workspace, namespace)


def _fleet_target(settings: Settings, name: str) -> Target:
    """The target as resolved (its region and account), when the fleet knows it."""
    from .checkpoint import open_store
    from .fleet.resolve import resolve_fleet

    wanted = _target(name)
    store = open_store(settings.checkpoint, region=settings.region, credentials=_credentials)
    known = resolve_fleet(settings, store, _credentials).targets
    return next((target for target in known if target.name == wanted.name), wanted)


def _renderer(settings: Settings) -> Any:
    from .render import Renderer

    return Renderer(settings.templates_dir, settings.timezone)


def _sample_batch(
    settings: Settings, receiver: str, events: str | None, *, test: bool, limit: int | None = None
) -> Any:
    """Alerts from an events file (a list or a GetEvents page) or the built-in samples."""
    from .render import load_sample_events, sample_batch

    raws = load_sample_events(events)[:limit]
    return sample_batch(
        receiver, raws, console_url=settings.console_url, region=settings.region, test=test
    )


if __name__ == "__main__":
    sys.exit(main())
