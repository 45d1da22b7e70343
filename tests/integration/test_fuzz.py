"""Fuzzing the two doors of outside input: the configuration and the GetEvents pages.

Whatever comes in, the CLI (in-process, through `flink_alerts.cli.main`) exits 0, 1 or 2, says
what went wrong in one line, never prints a traceback or a configured secret, and stays fast.
stdout is strict UTF-8 like a real terminal's, so text that cannot be printed is caught too.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flink_alerts.cli import main
from tests.servers.flink_server import FlinkServer
from tests.servers.receiver import ReceiverServer

SECRETS = ["fz-secret-Hq7w2k", "fz-token-Lp4x9z", "fz-pass-Vb3n8m"]
TIME_BOUND_S = 5.0  # generous: the machine may be busy; a real hang takes far longer
FUZZ = settings(
    max_examples=60,
    deadline=None,  # the time bound is asserted per example, with a clearer message
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# Numbers YAML knows but JSON does not, written as placeholders and swapped in afterwards.
_BARE = {"__HUGE__": "9" * 5000, "__NHUGE__": "-" + "9" * 5000, "__NAN__": ".nan"}
_BARE |= {"__INF__": ".inf", "__NINF__": "-.inf"}


@pytest.fixture(scope="module")
def flink() -> Iterator[FlinkServer]:
    """The local Flink API, with its AccessKey in the environment as `run` resolves it."""
    with FlinkServer() as server, pytest.MonkeyPatch.context() as env:
        env.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", server.credentials.access_key_id)
        env.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", server.credentials.access_key_secret)
        server.generate(12)
        yield server


@pytest.fixture(scope="module")
def receiver() -> Iterator[ReceiverServer]:
    with ReceiverServer() as server:
        yield server


# -- strategies -------------------------------------------------------------------------------

odd_text = st.text(st.characters(exclude_categories=()), max_size=12)
wild = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([*_BARE, "1000000d", "-5s", "1e300", "0", ""]),
    odd_text,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["x", "name"]), st.integers(), max_size=2),
    st.sampled_from(SECRETS),  # a secret pasted into the wrong key
)


def mostly(valid: st.SearchStrategy[Any], bad: st.SearchStrategy[Any] = wild) -> Any:
    """`valid` three times in four: far enough for a bad value to reach the deeper checks."""
    return st.integers(min_value=0, max_value=3).flatmap(lambda n: bad if n == 0 else valid)


duration = mostly(st.sampled_from(["30s", "2m", "500ms", "1h", "7d", "3"]))
count = mostly(st.integers(min_value=-3, max_value=200))


def local_url(secret: str) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [f"http://127.0.0.1:9/hook?access_token={secret}", f"https://127.0.0.1:9/{secret}", ""]
    )


def receiver_strategy() -> st.SearchStrategy[dict[str, Any]]:
    hook, token, password = (local_url(SECRETS[1]), st.just(SECRETS[0]), st.just(SECRETS[2]))
    common = {
        "template": mostly(st.sampled_from(["nope.j2", "no/such/dir/x.j2"])),
        "name": st.sampled_from(["a", "b", "é", ""]),
        "rate_limit": mostly(st.just("2/min")),
    }
    kinds = {
        "dingtalk": {
            "webhook": hook,
            "secret": token,
            "msgtype": mostly(st.just("text")),
            "at_mobiles": mostly(st.just(["13800000000"])),
            "at_user_ids": st.lists(odd_text, max_size=2),
            "at_all": mostly(st.booleans()),
        },
        "slack": {"webhook": hook},
        "feishu": {"webhook": hook, "secret": token},
        "wecom": {"webhook": hook},
        "webhook": {"url": hook, "headers": st.just({"Authorization": SECRETS[0]})},
        "email": {
            "sender": mostly(st.just("a@example.com")),
            "to": mostly(st.just(["b@example.com"])),
            "cc": st.lists(odd_text, max_size=2),
            "host": mostly(st.just("127.0.0.1")),
            "username": mostly(st.just("a@example.com")),
            "password": password,
            "port": count,
            "security": mostly(st.just("none")),
        },
        "console": {},
        "pager": {},
    }
    return st.sampled_from(sorted(kinds)).flatmap(
        lambda kind: st.fixed_dictionaries(
            {"type": st.just(kind)}, optional={**common, **kinds[kind], "extra": wild}
        )
    )


discover_strategy = st.fixed_dictionaries(
    {},
    optional={
        "regions": mostly(st.just(["cn-hangzhou"])),
        "include": mostly(st.just(["prod-*"])),
        "refresh": duration,
        "endpoint": mostly(st.just("http://127.0.0.1:9")),
    },
)
account_strategy = st.fixed_dictionaries(
    {"role_arn": mostly(st.just("acs:ram::1234567890:role/flink-alerts"))},
    optional={"discover": mostly(discover_strategy), "session_name": wild, "targets": wild},
)
config_strategy = st.fixed_dictionaries(
    {},
    optional={
        "region": st.one_of(st.just("cn-shanghai"), odd_text),
        "endpoint": mostly(st.just("http://127.0.0.1:9")),
        "targets": st.lists(
            st.fixed_dictionaries(
                {"workspace": st.sampled_from(["w", "v"]), "namespace": st.just("n")},
                optional={"deployment_ids": mostly(st.just(["d"]))},
            ),
            max_size=3,
        ),
        "start_from": st.one_of(st.sampled_from(["latest", "earliest", "2h"]), duration),
        "page_size": count,
        "max_pages": count,
        "timeout_s": count,
        "concurrency": count,
        "deadline_s": count,
        "overlap_window": duration,
        "timezone": st.one_of(st.just("UTC"), odd_text),
        "source": st.one_of(st.just("file://no-such-events.json"), odd_text),
        "templates_dir": st.one_of(st.just("no-such-dir"), odd_text),
        "console_url": st.one_of(st.just("https://c/{deployment_id}"), odd_text),
        "receivers": st.lists(receiver_strategy(), max_size=3),
        "routes": st.lists(st.fixed_dictionaries({"receivers": st.just(["a"])}), max_size=2),
        "delivery": st.fixed_dictionaries(
            {},
            optional={
                "initial_backoff": duration,
                "max_backoff": duration,
                "max_attempts": count,
                "max_age": duration,
                "timeout_s": count,
            },
        ),
        "unknown_key": wild,
        "discover": mostly(discover_strategy),
        "accounts": st.lists(account_strategy, max_size=2),
    },
)


def yaml_text(config: dict[str, Any]) -> str:
    """JSON (which is YAML), with the placeholders swapped for YAML's own numbers."""
    text = json.dumps(config)
    for placeholder, bare in _BARE.items():
        text = text.replace(f'"{placeholder}"', bare)
    return text


# -- running the CLI in-process ----------------------------------------------------------------


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", errors="strict")
    stderr = io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace")
    started = time.monotonic()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        code = main(list(argv))
    elapsed = time.monotonic() - started
    stdout.flush(), stderr.flush()
    assert elapsed < TIME_BOUND_S, f"{argv[0]} took {elapsed:.1f}s"
    return code, out.getvalue().decode(), err.getvalue().decode()


def assert_clean(code: int, out: str, err: str, secrets: list[str]) -> None:
    everything = out + err
    event(f"exit {code}")
    assert code in (0, 1, 2), everything
    assert "Traceback" not in everything and "unexpected" not in everything, everything
    for secret in secrets:
        assert secret not in everything, (secret, everything)
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and not out, everything


def cli_with_config(config_in: Callable[[str], dict[str, Any]], *argv: str) -> tuple[int, str, str]:
    """Run the CLI on the config `config_in(folder)`, written into a fresh temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(yaml_text(config_in(folder)))
        return cli(*argv, "--config", str(path))


@FUZZ
@given(config=config_strategy)
def test_fuzzed_configs_through_check(config):
    code, out, err = cli_with_config(lambda folder: config, "check")
    assert_clean(code, out, err, SECRETS)
    if code == 0:
        assert out.startswith("ok: ") and len(out.splitlines()) == 1


@FUZZ
@given(config=config_strategy)
def test_fuzzed_configs_through_run(config, flink):
    def config_in(folder: str) -> dict[str, Any]:
        target = {"workspace": flink.workspace, "namespace": flink.namespace}
        # The API under test: no replay file, no discovery (that would call STS and foasconsole).
        return {
            **{k: v for k, v in config.items() if k not in ("source", "discover", "accounts")},
            "endpoint": flink.url,
            "checkpoint": f"file://{folder}/cp",
            "targets": [target],
        }

    code, out, err = cli_with_config(config_in, "run", "--dry-run")
    assert_clean(code, out, err, [*SECRETS, flink.credentials.access_key_secret])
    if code != 2:
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["targets"] == 1 and summary["dry_run"] is True


# -- GetEvents pages -----------------------------------------------------------------------------

created_at = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(),
    st.sampled_from(["2026-11-27T07:49:00Z", "2026-11-27 15:49:00", "1764229740000", "yesterday"]),
    odd_text,
    st.none(),
)
event_strategy = st.fixed_dictionaries(
    {},
    optional={
        "eventId": st.one_of(st.uuids().map(str), odd_text, st.integers(), st.none()),
        "eventName": st.one_of(
            st.sampled_from(["JOB_FAILED", "STATE_TRANSITION_IS_COMPLETED"]), wild
        ),
        "createdAt": created_at,
        "deploymentId": mostly(st.just("dep-a")),
        "jobId": wild,
        "message": st.one_of(
            odd_text,
            st.just("Job failed: java.lang.OutOfMemoryError\n\tat x.y(Z.java:1)\n" * 5000),
            st.just(f"echo {SECRETS[1]}"),
            st.just("Job failed: \ud83d a truncated emoji, \udc00 and \ud83d\ude00"),
            wild,
        ),
        "namespace": wild,
        "workspace": wild,
        "surprise": wild,
    },
)
page_strategy = st.fixed_dictionaries(
    {
        "success": mostly(st.just(True)),
        "data": mostly(st.lists(mostly(event_strategy), max_size=6)),
        "totalSize": mostly(st.integers(min_value=0, max_value=30)),
    },
    optional={
        "requestId": wild,
        "pageIndex": mostly(st.just(1)),
        "pageSize": mostly(st.just(100)),
        "errorCode": wild,
        "errorMessage": wild,
    },
)


@FUZZ
@given(page=page_strategy)
def test_fuzzed_getevents_pages_through_run(page, flink, receiver):
    hook = f"{receiver.url}?access_token={SECRETS[1]}"

    def config_in(folder: str) -> dict[str, Any]:
        return {
            "endpoint": flink.url,
            "checkpoint": f"file://{folder}/cp",
            "start_from": "earliest",
            "targets": [{"workspace": flink.workspace, "namespace": flink.namespace}],
            "receivers": [{"name": "hook", "type": "webhook", "url": hook}],
            "delivery": {"timeout_s": 1},
        }

    flink.inject("raw", body=page, action="GetEvents")
    code, out, err = cli_with_config(config_in, "run")
    assert flink.pending_faults() == 0
    assert_clean(code, out, err, [SECRETS[1], flink.credentials.access_key_secret])
    assert code in (0, 1) and json.loads(out.strip().splitlines()[-1])["targets"] == 1
