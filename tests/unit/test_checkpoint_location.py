"""Where checkpoints go: the URL forms, and the defaults that depend on running in FC."""

from __future__ import annotations

import pytest

from flink_alerts.checkpoint import parse_location
from flink_alerts.errors import ConfigError
from flink_alerts.function_compute import in_function_compute


@pytest.mark.parametrize(
    ("in_fc", "endpoint"),
    [
        (False, "https://inst.cn-shanghai.ots.aliyuncs.com"),
        (True, "https://inst.cn-shanghai.vpc.tablestore.aliyuncs.com"),
    ],
)
def test_tablestore_endpoint_follows_where_the_function_runs(in_fc, endpoint):
    where = parse_location("tablestore://inst/table", region="cn-shanghai", in_fc=in_fc)
    assert (where.name, where.path, where.endpoint) == ("inst", "table", endpoint)


@pytest.mark.parametrize("in_fc", [False, True])
def test_tablestore_endpoint_option_wins(in_fc):
    url = "tablestore://inst/table?endpoint=https://inst.cn-shanghai.ots.aliyuncs.com"
    where = parse_location(url, region="cn-shanghai", in_fc=in_fc)
    assert where.endpoint == "https://inst.cn-shanghai.ots.aliyuncs.com"


@pytest.mark.parametrize(
    "url",
    [
        "file://./.flink-alerts",
        "file:///tmp/x",
        "file:///code/x",
        "file:///mnt",
        "file:///mnt/../tmp/x",
    ],
)
def test_file_checkpoint_off_nas_is_a_config_error_in_fc(url):
    assert parse_location(url, region="r").scheme == "file"  # fine outside FC
    with pytest.raises(ConfigError) as exc:
        parse_location(url, region="r", in_fc=True)
    assert exc.value.path == "checkpoint"
    assert "oss://BUCKET/PREFIX" in exc.value.reason and "/mnt/" in exc.value.reason


def test_file_checkpoint_on_a_nas_mount_is_fine_in_fc():
    where = parse_location("file:///mnt/nas/flink-alerts", region="r", in_fc=True)
    assert where.name == "/mnt/nas/flink-alerts"


class _Function:
    name = "flink-alerts"


class _FcContext:
    function = _Function()


def test_in_function_compute_from_environment_or_context():
    assert in_function_compute(None, {"FC_FUNCTION_NAME": "flink-alerts"})
    assert in_function_compute(_FcContext(), {})
    assert not in_function_compute(None, {})
    assert not in_function_compute(object(), {"FC_FUNCTION_NAME": ""})
