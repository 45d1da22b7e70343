"""The code package for FC's python3.10 runtime: built by scripts/build-fc.sh, run in a bare
Python 3.10 that has nothing but the package (no site-packages), as FC would run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.timeout(600)
def test_built_package_runs_the_handler_in_a_bare_python310(tmp_path):
    interpreter = python310()
    if interpreter is None:
        pytest.skip("no Python 3.10 on this machine (pyenv or python3.10)")
    out = tmp_path / "code"
    config = tmp_path / "config.yaml"
    config.write_text(
        (REPO / "examples" / "config.yaml")
        .read_text()
        .replace("file://examples/", f"file://{REPO}/examples/")
        .replace("file://./.flink-alerts", f"file://{tmp_path}/checkpoints")
    )
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    subprocess.run([str(REPO / "scripts" / "build-fc.sh"), str(config)], env=env, check=True)
    assert not (out / "python" / "tablestore").exists()  # preinstalled on FC, loaded lazily
    probe = (
        "import sys, json; sys.path.insert(0, '.'); import index\n"
        "class Context:\n"
        "    def get_remaining_time_in_ms(self): return 60000\n"
        'event = b\'{"triggerTime": "2026-11-26T07:49:00Z", "triggerName": "t", "payload": ""}\'\n'
        "print(index.handler(event, Context()))\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [interpreter, "-S", "-c", probe], cwd=out, env=bare, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    summary_line, modules_line = done.stdout.strip().splitlines()[-2:]
    summary = json.loads(summary_line)
    assert summary["alerts"] == 4 and summary["sent"] == 3 and summary["errors"] == []
    assert not {"oss2", "tablestore", "fc2", "numpy"} & set(json.loads(modules_line))
