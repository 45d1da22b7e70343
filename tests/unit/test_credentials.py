from types import SimpleNamespace

import pytest

from flink_alerts.credentials import Credentials, resolve_credentials
from flink_alerts.errors import CredentialsError

ENV = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "env-id",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret",
    "ALIBABA_CLOUD_SECURITY_TOKEN": "env-token",
}


def test_fc_context_comes_first():
    context = SimpleNamespace(
        credentials=SimpleNamespace(
            access_key_id="ctx-id", access_key_secret="ctx-secret", security_token="ctx-token"
        )
    )
    found = resolve_credentials(context, ENV)
    assert found == Credentials("ctx-id", "ctx-secret", "ctx-token")


def test_python312_context_without_credentials_uses_the_environment():
    found = resolve_credentials(SimpleNamespace(), ENV)
    assert found == Credentials("env-id", "env-secret", "env-token") and found.is_sts


def test_profile_file_when_nothing_else(tmp_path):
    path = tmp_path / "credentials"
    path.write_text(
        "[default]\ntype = access_key\naccess_key_id = p-id\naccess_key_secret = p-secret\n"
        "[other]\ntype = access_key\naccess_key_id = o-id\naccess_key_secret = o-secret\n"
    )
    env = {"ALIBABA_CLOUD_CREDENTIALS_FILE": str(path)}
    assert resolve_credentials(None, env) == Credentials("p-id", "p-secret", None)
    other = resolve_credentials(None, {**env, "ALIBABA_CLOUD_PROFILE": "other"})
    assert other.access_key_id == "o-id"


def test_nothing_found_is_one_clear_error(tmp_path):
    env = {"ALIBABA_CLOUD_CREDENTIALS_FILE": str(tmp_path / "missing")}
    with pytest.raises(CredentialsError, match="ALIBABA_CLOUD_ACCESS_KEY_ID"):
        resolve_credentials(None, env)


def test_secrets_never_show_in_repr():
    text = repr(Credentials("id", "very-secret", "very-token")) + str(Credentials("id", "s3", "t3"))
    assert "very-secret" not in text and "very-token" not in text and "s3" not in text
