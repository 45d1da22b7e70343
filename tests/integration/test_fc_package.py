"""The code package for FC's python3.10 runtime: built by scripts/build-fc.sh, run in a bare
Python 3.10 that has nothing but the package (no site-packages), as FC would run it; then with
FC's preinstalled oss2 2.16.0 / tablestore 5.4.1 behind it, checkpointing to local OSS and
Tablestore servers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers.oss_server import OssTestServer
from tests.servers.tablestore_server import TablestoreTestServer

REPO = Path(__file__).resolve().parents[2]


def python310() -> str | None:
    if sys.version_info[:2] == (3, 10):
        return sys.executable
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        found = sorted(Path(root, "versions").glob("3.10.*/bin/python"))
        if found:
            return str(found[-1])
    return shutil.which("python3.10")


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> tuple[str, Path, Path]:
    """(Python 3.10, the built package with the example config, the example config)."""
    interpreter = python310()
    if interpreter is None:
        pytest.skip("no Python 3.10 on this machine (pyenv or python3.10)")
    tmp_path = tmp_path_factory.mktemp("fc")
    out = tmp_path / "code"
    config = tmp_path / "config.yaml"
    config.write_text(
        (REPO / "examples" / "config.yaml")
        .read_text()
        .replace("file://examples/", f"file://{REPO}/examples/")
        .replace("file://./.flink-alerts", f"file://{tmp_path}/checkpoints")
    )
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "PYTHON310": interpreter}
    subprocess.run([str(REPO / "scripts" / "build-fc.sh"), str(config)], env=env, check=True)
    return interpreter, out, config


def run_handler(interpreter: str, code: Path, home: Path, probe_tail: str = "", **env: str):
    probe = (
        "import sys, json; sys.path.insert(0, '.'); import index\n"
        f"{probe_tail}"
        "class Credentials:  # what FC python3.10 puts on the context\n"
        "    access_key_id = 'test-key-id'; access_key_secret = 'test-secret'; security_token = None\n"
        "class Context:\n"
        "    credentials = Credentials()\n"
        "    def get_remaining_time_in_ms(self): return 60000\n"
        'event = b\'{"triggerTime": "2026-11-26T07:49:00Z", "triggerName": "t", "payload": ""}\'\n'
        "print(index.handler(event, Context()))\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
        "import importlib.metadata as md\n"
        "print(json.dumps({n: md.version(n) for n in ('oss2', 'tablestore', 'requests') if n in sys.modules}))\n"
    )
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(home), **env}
    done = subprocess.run(
        [interpreter, "-S", "-c", probe], cwd=code, env=bare, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    summary, modules, versions = done.stdout.strip().splitlines()[-3:]
    return json.loads(summary), set(json.loads(modules)), json.loads(versions)


@pytest.mark.timeout(600)
def test_built_package_runs_the_handler_in_a_bare_python310(package, tmp_path):
    interpreter, out, _ = package
    assert not (out / "python" / "tablestore").exists()  # preinstalled on FC, loaded lazily
    # Bytecode for the runtime's Python only: FC cannot write it to the read-only /code.
    pycs = {path.name.split(".")[1] for path in out.rglob("*.pyc")}
    assert pycs == {"cpython-310"}
    for module in ("index", "python/flink_alerts/handler", "python/pydantic/main"):
        path = out / module
        assert (path.parent / "__pycache__" / f"{path.name}.cpython-310.pyc").is_file()
    summary, modules, _ = run_handler(interpreter, out, tmp_path)
    assert summary["alerts"] == 4 and summary["sent"] == 1 and summary["errors"] == []
    assert not {"oss2", "tablestore", "fc2", "numpy"} & modules


@pytest.fixture(scope="module")
def fc_runtime_libraries(package, tmp_path_factory) -> Path:
    """What FC's python3.10 runtime has preinstalled, at exactly its versions."""
    interpreter = package[0]
    target = tmp_path_factory.mktemp("runtime")
    constraints = REPO / ".ci" / "fc-python310-constraints.txt"
    subprocess.run(
        [interpreter, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--target", str(target), "-c", str(constraints), "oss2", "tablestore", "requests"],
        check=True, capture_output=True,
    )  # fmt: skip
    return target


@pytest.mark.timeout(600)
@pytest.mark.parametrize("store", ["oss", "tablestore"])
def test_built_package_uses_fcs_preinstalled_store_libraries(
    package, fc_runtime_libraries, tmp_path, store
):
    interpreter, out, example = package
    with (
        OssTestServer() as oss,
        TablestoreTestServer("inst", {"test-key-id": "test-secret"}) as ots,
    ):
        if store == "oss":
            checkpoint = f"oss://{oss.create_bucket()}/fa?endpoint={oss.endpoint}"
        else:
            ots.create_table("checkpoints")
            checkpoint = f"tablestore://inst/checkpoints?endpoint={ots.endpoint}"
        config = tmp_path / "config.yaml"
        config.write_text(
            re.sub(r"checkpoint: .*", f"checkpoint: {checkpoint}", example.read_text())
        )
        # FC's runtime libraries come after the package's own folders, as on FC.
        tail = f"sys.path.append({str(fc_runtime_libraries)!r})\n"
        summary, modules, versions = run_handler(
            interpreter, out, tmp_path, tail,
            FLINK_ALERTS_CONFIG=str(config), FC_FUNCTION_NAME="flink-alerts",
        )  # fmt: skip
        stored = oss.requests if store == "oss" else ots.requests
    assert summary["alerts"] == 4 and summary["sent"] == 1 and summary["errors"] == []
    library, version = {"oss": ("oss2", "2.16.0"), "tablestore": ("tablestore", "5.4.1")}[store]
    assert library in modules and versions[library] == version
    assert any(request.status == 200 for request in stored)  # the checkpoint went there
