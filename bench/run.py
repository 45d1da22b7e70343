"""Benchmarks: `python bench/run.py` from the repo root prints a table and writes bench/results.json.

Each figure stands next to its reference and the ratio (ours / reference), against the goals of
issue 10. Everything runs against the local test servers on 127.0.0.1, so the numbers measure our
code plus loopback HTTP, not the cloud. The servers run in this process; each measured part runs in
a fresh child process (`bench/run.py --child PART`), so imports are cold and peak RSS is its own.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "functions")]

RESULTS = REPO / "bench" / "results.json"
REPEAT = 7  # fresh processes per cold figure; warm calls are many more
WARM_CALLS = 40
FLEET_TARGETS = 1_000
FLEET_LATENCY_S = 0.05
BACKLOG_EVENTS = 100_000
RENDER_ALERTS = 500

# Cost (Function Compute 3.0, pay-as-you-go, help.aliyun.com "Pay-as-you-go" billing page, read
# 2026-11): every billable item is converted to CU and a CU costs CNY 0.00011 (tier 1 list
# price, first 200 million CU a month). Conversion: 75 CU per 10,000 invocations, 1 CU per active
# vCPU-second, 0.15 CU per GB-second of memory; on-demand instances are billed per millisecond.
CNY_PER_CU = 0.00011
CU_PER_INVOCATION = 75 / 10_000
CU_PER_VCPU_S = 1.0
CU_PER_GB_S = 0.15
MEMORY_GB = 256 / 1024  # s.yaml memorySize
VCPU = 0.25  # s.yaml sets none; FC allows 1 to 4 GB per vCPU, so 256 MB gets at most 0.25
RUNS_PER_MONTH = 60 * 24 * 30  # s.yaml timer: @every 1m


@dataclass
class Figure:
    name: str
    ours: float
    reference: float
    unit: str
    reference_is: str
    goal: str = ""
    notes: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.reference if self.reference else float("nan")


# --- child side: the measured code, in a fresh process -----------------------------------------


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _sdk_client(spec: dict[str, Any]) -> tuple[Any, Callable[[int], Any]]:
    from alibabacloud_tea_openapi import models as openapi_models
    from alibabacloud_tea_util.models import RuntimeOptions
    from alibabacloud_ververica20220718 import models
    from alibabacloud_ververica20220718.client import Client

    config = openapi_models.Config(
        access_key_id=spec["key_id"],
        access_key_secret=spec["secret"],
        endpoint=spec["url"].removeprefix("http://"),
        protocol="http",
    )
    client = Client(config)
    headers = models.GetEventsHeaders(workspace=spec["workspace"])

    def get_events(page: int, namespace: str = spec["namespace"]) -> Any:
        request = models.GetEventsRequest(page_index=page, page_size=100)
        return client.get_events_with_options(namespace, request, headers, RuntimeOptions()).body

    return client, get_events


def child_warm(spec: dict[str, Any]) -> dict[str, Any]:
    """Our handler again and again vs the SDK's GetEvents, alternating so load hits both alike."""
    import index

    _, get_events = _sdk_client(spec)
    index.handler(b"{}", None)  # cold
    get_events(1)
    ours, sdk = [], []
    for _ in range(WARM_CALLS):
        started = time.perf_counter()
        index.handler(b"{}", None)
        ours.append(_since(started))
        started = time.perf_counter()
        get_events(1)
        sdk.append(_since(started))
    return {
        "ours": statistics.median(ours),
        "ours_min": min(ours),
        "sdk": statistics.median(sdk),
        "sdk_min": min(sdk),
    }


def child_run_twice(_: dict[str, Any]) -> dict[str, Any]:
    """A first run (quiet `latest` start: checkpoints appear), then the measured steady run."""
    import index

    index.handler(b"{}", None)
    cpu, started = time.process_time(), time.perf_counter()
    summary = json.loads(index.handler(b"{}", None))
    return {
        "ms": _since(started),
        "cpu_ms": (time.process_time() - cpu) * 1000,
        "rss_mib": _peak_rss_mib(),
        "errors": summary["errors"][:3],
    }


def child_run_once(_: dict[str, Any]) -> dict[str, Any]:
    import index

    started = time.perf_counter()
    summary = json.loads(index.handler(b"{}", None))
    return {"ms": _since(started), "rss_mib": _peak_rss_mib(), "summary": summary}


def child_sdk_fleet(spec: dict[str, Any]) -> dict[str, Any]:
    """One SDK GetEvents per namespace of the fleet, as many at once as our run: CPU per call."""
    from concurrent.futures import ThreadPoolExecutor

    _, get_events = _sdk_client(spec)
    get_events(1)
    cpu = time.process_time()
    with ThreadPoolExecutor(spec["concurrency"]) as pool:
        list(pool.map(lambda namespace: get_events(1, namespace), spec["namespaces"]))
    return {"cpu_ms": (time.process_time() - cpu) * 1000 / len(spec["namespaces"])}


def child_sdk_paging(spec: dict[str, Any]) -> dict[str, Any]:
    """What a caller of the SDK does at least: every page, every event kept."""
    _, get_events = _sdk_client(spec)
    started = time.perf_counter()
    events, page = [], 1
    while True:
        body = get_events(page)
        events += body.data or []
        if len(body.data or []) < 100:
            break
        page += 1
    return {"ms": _since(started), "rss_mib": _peak_rss_mib(), "events": len(events)}


def _peak_rss_mib() -> float:
    """This process's own peak RSS. Not ru_maxrss: on Linux a child started by fork/exec reports
    the parent's RSS there when it is larger (here the parent holds a 100,000-event server)."""
    try:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


CHILDREN = {
    name.removeprefix("child_"): function
    for name, function in dict(globals()).items()
    if name.startswith("child_")
}


# Cold probes run as `python -c` without this module, so that nothing is imported before the clock
# starts (this module imports json, subprocess, dataclasses, ... which a run would have to pay for).
COLD_OURS = """
import sys, time
started = time.perf_counter()
sys.path.insert(0, "functions")
import index
index.handler(b"{}", None)
print((time.perf_counter() - started) * 1000, "jinja2" in sys.modules)
"""
COLD_SDK = """
import sys, time
started = time.perf_counter()
from alibabacloud_tea_openapi import models as openapi_models
from alibabacloud_tea_util.models import RuntimeOptions
from alibabacloud_ververica20220718 import models
from alibabacloud_ververica20220718.client import Client
url, key_id, secret, workspace, namespace = sys.argv[1:]
config = openapi_models.Config(
    access_key_id=key_id, access_key_secret=secret, endpoint=url, protocol="http"
)
request = models.GetEventsRequest(page_index=1, page_size=100)
headers = models.GetEventsHeaders(workspace=workspace)
Client(config).get_events_with_options(namespace, request, headers, RuntimeOptions())
print((time.perf_counter() - started) * 1000)
"""


def cold_ms(probe: str, env: dict[str, str], *args: str) -> tuple[float, str]:
    done = subprocess.run(
        [sys.executable, "-c", probe, *args],
        cwd=REPO,
        env={**os.environ, "NO_PROXY": "127.0.0.1", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    ms, _, rest = done.stdout.strip().splitlines()[-1].partition(" ")
    return float(ms), rest


# --- parent side: servers, configs, children ---------------------------------------------------


@contextmanager
def flink(
    events: int = 0, step_s: float = 60.0, namespaces: int = 0, latency_s: float = 0.0
) -> Iterator[Any]:
    from tests.servers.flink_server import FlinkServer

    with FlinkServer() as server:
        if events:
            server.generate(events, step_s=step_s)
        server.namespaces |= {f"ns-{i}" for i in range(namespaces)}
        server.latency_s = latency_s
        yield server


@contextmanager
def configured(server: Any, **settings: Any) -> Iterator[dict[str, str]]:
    """Environment for a child: a config file, a file checkpoint, the server's credentials."""
    with tempfile.TemporaryDirectory() as tmp:
        names = settings.pop("namespaces", None) or [server.namespace]
        config = {
            "endpoint": server.url,
            "targets": [{"workspace": server.workspace, "namespace": n} for n in names],
            "checkpoint": f"file://{tmp}/checkpoint",
            **settings,
        }
        path = Path(tmp) / "config.yaml"
        path.write_text(json.dumps(config))
        yield {
            "FLINK_ALERTS_CONFIG": str(path),
            "FLINK_ALERTS_LOG_LEVEL": "ERROR",
            "ALIBABA_CLOUD_ACCESS_KEY_ID": server.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": server.access_key_secret,
        }


def child(part: str, env: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", part, json.dumps(spec)],
        env={**os.environ, "NO_PROXY": "127.0.0.1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{part} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def sdk_spec(server: Any) -> dict[str, Any]:
    return {
        "url": server.url,
        "key_id": server.access_key_id,
        "secret": server.access_key_secret,
        "workspace": server.workspace,
        "namespace": server.namespace,
    }


def bench_cold_and_warm() -> tuple[list[Figure], dict[str, float]]:
    # Like the FC package (scripts/build-fc.sh) and the SDK's installed files: bytecode ready.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "functions")], check=True)
    with flink(events=500) as server, configured(server) as env:
        child("run_once", env)  # the checkpoint exists: the measured runs are steady
        server.reset_counts()
        spec = sdk_spec(server)
        args = (spec["url"].removeprefix("http://"), *list(spec.values())[1:])
        ours, sdk = [], []
        for _ in range(REPEAT):  # alternating, so that load from elsewhere hits both alike
            ours.append(cold_ms(COLD_OURS, env))
            sdk.append(cold_ms(COLD_SDK, {}, *args)[0])
        calls = server.request_count("GetEvents") / REPEAT - 1  # the SDK's own call
        warm = child("warm", env, **spec)
    cold = statistics.median(ms for ms, _ in ours)
    figures = [
        Figure(
            "cold FC invocation (import, config, GetEvents, checkpoint), fresh process",
            cold,
            statistics.median(sdk),
            "ms",
            "SDK import + 1 GetEvents, fresh process",
            "≤ 0.5",
            f"{calls:.0f} GetEvents; jinja2 imported: {ours[0][1]}",
        ),
        Figure(
            "warm invocation, nothing new (handler again, same process)",
            warm["ours"],
            warm["sdk"],
            "ms",
            "1 warm SDK GetEvents",
            "≤ 3",
            f"min {warm['ours_min']:.1f} ms vs {warm['sdk_min']:.1f} ms",
        ),
    ]
    return figures, {"cold_ms": cold, "warm_ms": warm["ours"]}


def bench_fleet() -> list[Figure]:
    names = [f"ns-{i}" for i in range(FLEET_TARGETS)]
    with flink(namespaces=FLEET_TARGETS, latency_s=FLEET_LATENCY_S) as server:
        from flink_alerts.settings import Settings

        concurrency = Settings.model_fields["concurrency"].default
        with configured(server, namespaces=names) as env:
            server.reset_counts()
            result = child("run_twice", env)
            calls = server.request_count("GetEvents") / 2 / FLEET_TARGETS
        sdk = child("sdk_fleet", **sdk_spec(server), namespaces=names, concurrency=concurrency)
    ideal_ms = FLEET_TARGETS * calls * FLEET_LATENCY_S * 1000 / concurrency
    label = f"{FLEET_TARGETS:,} targets, {FLEET_LATENCY_S * 1000:.0f} ms/request"
    notes = f"concurrency {concurrency}, {calls:.2f} GetEvents/target"
    if result["errors"]:
        notes += f"; errors: {result['errors']}"
    return [
        Figure(
            f"fleet: {label}, steady run", result["ms"], ideal_ms, "ms", "ideal", "≤ 1.3", notes
        ),
        Figure(
            "fleet: CPU per steady target",
            result["cpu_ms"] / FLEET_TARGETS,
            0.5,
            "ms",
            "goal",
            "≤ 1",
        ),
        # The same latency makes every call dearer (the CPU idles between calls and comes back
        # cold): the SDK doing only the GetEvents calls, as many at once, is the fair measure.
        Figure(
            "fleet: CPU per steady target vs the SDK's GetEvents alone",
            result["cpu_ms"] / FLEET_TARGETS,
            sdk["cpu_ms"],
            "ms",
            f"1 SDK GetEvents per target, {concurrency} at once",
            "",
        ),
        Figure("fleet: peak RSS", result["rss_mib"], 128, "MiB", "goal", "≤ 1"),
    ]


def bench_backlog() -> list[Figure]:
    with flink(events=BACKLOG_EVENTS, step_s=1.0) as server:
        pages = BACKLOG_EVENTS // 100 + 10
        with configured(server, start_from="earliest", max_pages=pages) as env:
            ours = child("run_once", env)
        sdk = child("sdk_paging", **sdk_spec(server))
    summary = ours["summary"]
    notes = f"{summary['fetched']:,} fetched, {summary['api_calls']} calls"
    return [
        Figure(
            f"backlog: {BACKLOG_EVENTS:,} events, one target, one run",
            ours["ms"],
            sdk["ms"],
            "ms",
            f"SDK paging alone ({sdk['events']:,} events)",
            "≤ 1.2",
            notes,
        ),
        Figure(
            "backlog: peak RSS",
            ours["rss_mib"],
            sdk["rss_mib"],
            "MiB",
            "SDK paging alone",
            "≤ 128 MiB",
        ),
    ]


def bench_render() -> list[Figure]:
    from flink_alerts.channels import make_channel
    from flink_alerts.render import Renderer
    from flink_alerts.settings import DingTalkReceiver, EmailReceiver
    from tests.factories import failure_batch

    trace = "java.lang.OutOfMemoryError: Java heap space\n" + "\tat a.b.C.d(C.java:1)\n" * 500
    batch = failure_batch([trace[:10_000]] * RENDER_ALERTS)
    renderer = Renderer()
    hook = "https://oapi.dingtalk.com/robot/send?access_token=x"
    dingtalk = make_channel(DingTalkReceiver(name="d", type="dingtalk", webhook=hook), renderer)
    mail = EmailReceiver(name="m", type="email", sender="a@example.com", to=["b@example.com"])
    email = make_channel(mail, renderer)
    figures = []
    for channel in (dingtalk, email):
        renders = count_renders(channel, batch)
        build_ms = best_ms(lambda channel=channel: channel.build(batch))
        payload = channel.build(batch)[0].payload
        shown = len(batch.alerts) - int(payload_omitted(channel, payload))
        one_ms = best_ms(lambda channel=channel, shown=shown: render_once(channel, batch, shown))
        figures.append(
            Figure(
                f"render {RENDER_ALERTS} alerts, 10 KB traces -> {channel.type}",
                build_ms,
                one_ms,
                "ms",
                f"one context + render of the {shown} alerts shown",
                "one render + ≤ 1 cut",
                f"{renders} renders",
            )
        )
    html, text = (email.build(batch)[0].payload.get_body((kind,)) for kind in ("html", "plain"))
    for part, limit in ((html, 100_000), (text, 50_000)):
        size = len(part.get_content().encode())
        name = f"email {part.get_content_subtype()} part, {RENDER_ALERTS} alerts"
        figures.append(Figure(name, size / 1000, limit / 1000, "KB", "limit", "≤ 1"))
    return figures


def render_once(channel: Any, batch: Any, shown: int) -> Any:
    """The work a batch needs at the least: its shown alerts' context and one render."""
    renderer, limits = channel.renderer, channel.limits()
    alerts = renderer.alert_contexts(
        batch.alerts[:shown], limits.max_message_chars, limits.max_message_lines
    )
    return channel.payload(renderer.context_for(batch, alerts=alerts))


def payload_omitted(channel: Any, payload: Any) -> int:
    text = json.dumps(payload, ensure_ascii=False) if channel.type != "email" else str(payload)
    marker = "… and "
    if marker not in text:
        return 0
    return int(text.split(marker, 1)[1].split(" ", 1)[0].replace(",", ""))


def count_renders(channel: Any, batch: Any) -> int:
    calls = 0
    original = channel.payload

    def counting(context: dict[str, Any]) -> Any:
        nonlocal calls
        calls += 1
        return original(context)

    channel.payload = counting
    try:
        channel.build(batch)
    finally:
        del channel.payload
    return calls


def best_ms(action: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(_since(started))
    return min(times)


def cost_per_month(run_ms: float) -> float:
    seconds = run_ms / 1000
    cu = CU_PER_INVOCATION + seconds * (VCPU * CU_PER_VCPU_S + MEMORY_GB * CU_PER_GB_S)
    return RUNS_PER_MONTH * cu * CNY_PER_CU


def bench_cost(runs: dict[str, float]) -> list[Figure]:
    floor = cost_per_month(0.0)
    return [
        Figure(
            f"cost per month, every run {kind} ({runs[key]:.0f} ms billed)",
            cost_per_month(runs[key]),
            floor,
            "CNY",
            "invocation fee alone",
            "",
            f"{RUNS_PER_MONTH:,} runs, {MEMORY_GB * 1024:.0f} MB, {VCPU} vCPU",
        )
        for kind, key in (("warm", "warm_ms"), ("cold", "cold_ms"))
    ]


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()}"
    )


def number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def table(figures: list[Figure]) -> str:
    lines = ["| what | ours | reference | ratio | goal | notes |", "|---|---|---|---|---|---|"]
    for f in figures:
        lines.append(
            f"| {f.name} | {number(f.ours)} {f.unit} | {number(f.reference)} {f.unit} "
            f"({f.reference_is}) | {f.ratio:.2f} | {f.goal} | {f.notes} |"
        )
    return "\n".join(lines)


def main() -> None:
    # Here, not at the top: a child (`--child PART`) must not carry these imports in its RSS.
    from bench.discovery import bench_discovery
    from bench.ingest import ingestion_table, steady_ingestion

    started = time.perf_counter()
    figures, runs = bench_cold_and_warm()
    figures += bench_fleet() + bench_backlog() + bench_render() + bench_cost(runs)
    took_s = time.perf_counter() - started
    print(f"Machine: {machine()}; took {took_s:.0f} s\n")
    print(table(figures))
    results = {
        "machine": machine(),
        "took_s": round(took_s, 1),
        "figures": [{**asdict(f), "ratio": round(f.ratio, 3)} for f in figures],
    }
    results["ingestion"] = steady_ingestion()
    print("\nIngestion, steady state per target and run:\n" + ingestion_table(results["ingestion"]))
    discovery = bench_discovery()
    print("\nDiscovery:\n| benchmark | time | notes |\n|---|---|---|")
    for name, value, notes in discovery:
        print(f"| {name} | {value} | {notes} |")
    results["discovery"] = [{"benchmark": n, "value": v, "notes": t} for n, v, t in discovery]
    RESULTS.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    print(f"\nwritten to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(CHILDREN[sys.argv[2]](json.loads(sys.argv[3]))))
    else:
        main()
