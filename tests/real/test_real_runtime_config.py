"""ServerConfig: defaults, precedence (file < environment < flags), errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from real.config import ConfigError, load_config, member_id

CLUSTER = "a=http://127.0.0.1:12380,b=http://127.0.0.1:22380,c=http://127.0.0.1:32380"


def test_real_runtime_config_defaults_are_a_single_local_node() -> None:
    config = load_config([], {})
    assert config.name == "default"
    assert config.data_dir == Path("default.chainfire")
    assert [url.url for url in config.listen_client_urls] == ["http://localhost:2379"]
    assert [(u.host, u.port) for u in config.listen_peer_urls] == [("localhost", 2380)]
    assert config.member_names() == ("default",)
    assert config.peer_addresses() == {}
    assert config.initial_cluster_state == "new"
    assert (config.tick_ms, config.election_ticks) == (100, 10)
    assert load_config(["--name", "n7"], {}).data_dir == Path("n7.chainfire")


def test_real_runtime_config_precedence_file_env_flags(tmp_path: Path) -> None:
    file = tmp_path / "node.toml"
    file.write_text(
        'name = "a"\n'
        'data-dir = "/from/file"\n'
        f'initial-cluster = "{CLUSTER}"\n'
        'listen_peer_urls = ["http://127.0.0.1:12380"]\n'
        "snapshot-count = 7\n")
    env = {"CHAINFIRE_CONFIG_FILE": str(file), "CHAINFIRE_DATA_DIR": "/from/env",
           "CHAINFIRE_SNAPSHOT_COUNT": "9", "CHAINFIRE_REWRITE": "1"}
    config = load_config(["--snapshot-count", "11"], env)
    assert config.name == "a"  # file only
    assert config.data_dir == Path("/from/env")  # env over file
    assert config.snapshot_count == 11  # flag over env over file
    assert config.member_names() == ("a", "b", "c")
    ids = config.member_ids()
    assert config.node_id == ids["a"] == member_id(["http://127.0.0.1:12380"])
    assert config.peer_addresses() == {ids["b"]: ("127.0.0.1", 22380),
                                       ids["c"]: ("127.0.0.1", 32380)}
    # --config-file beats CHAINFIRE_CONFIG_FILE.
    other = tmp_path / "other.toml"
    other.write_text('name = "b"\n' f'initial-cluster = "{CLUSTER}"\n')
    assert load_config(["--config-file", str(other)], env).name == "b"


def test_real_runtime_config_every_member_computes_the_same_ids() -> None:
    ids = {name: load_config(["--name", name, "--initial-cluster", CLUSTER], {}).member_ids()
           for name in "abc"}
    assert ids["a"] == ids["b"] == ids["c"]
    assert len(set(ids["a"].values())) == 3
    token = load_config(["--initial-cluster", CLUSTER, "--name", "a",
                         "--initial-cluster-token", "other"], {})
    assert token.member_ids() != ids["a"]


@pytest.mark.parametrize(("argv", "env", "field", "reason"), [
    (["--initial-cluster-state", "old"], {}, "initial-cluster-state", "'new' or 'existing'"),
    ([], {"CHAINFIRE_INITIAL_CLUSTER_STATE": "maybe"}, "initial-cluster-state",
     "CHAINFIRE_INITIAL_CLUSTER_STATE"),
    (["--listen-client-urls", "https://127.0.0.1:1"], {}, "listen-client-urls",
     "needs --cert-file"),
    (["--listen-peer-urls", "127.0.0.1:2380"], {}, "listen-peer-urls", "http://host:port"),
    (["--listen-peer-urls", "http://127.0.0.1:0"], {}, "listen-peer-urls", "port 0"),
    (["--listen-client-urls", "http://h:99999"], {}, "listen-client-urls", "bad port"),
    (["--initial-cluster", "x=http://127.0.0.1:1"], {}, "initial-cluster",
     "does not name this member"),
    (["--initial-cluster", "default"], {}, "initial-cluster", "name=http"),
    (["--initial-cluster", "a=http://h:1,default=http://h:1"], {}, "initial-cluster",
     "given to both"),
    (["--name", "a=b"], {}, "name", "must not contain"),
    (["--snapshot-count", "-3"], {}, "snapshot-count", "must be > 0"),
    (["--heartbeat-interval-ms", "ten"], {}, "heartbeat-interval-ms", "integer"),
    (["--election-timeout-ms", "300"], {}, "election-timeout-ms", "5 heartbeat"),
    (["--bogus-flag", "1"], {}, "command line", "unrecognized"),
])
def test_real_runtime_config_errors_name_field_and_reason(
        argv: list[str], env: dict[str, str], field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(argv, env)
    assert caught.value.field == field
    assert reason in str(caught.value)


def test_real_runtime_config_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(["--config-file", str(bad)], {})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('colour = "blue"\n')
    with pytest.raises(ConfigError, match=r"colour.*unknown setting"):
        load_config(["--config-file", str(unknown)], {})
    wrong_type = tmp_path / "type.toml"
    wrong_type.write_text("snapshot-count = true\n")
    with pytest.raises(ConfigError, match=r"snapshot-count.*integer"):
        load_config(["--config-file", str(wrong_type)], {})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config([], {"CHAINFIRE_CONFIG_FILE": str(tmp_path / "missing.toml")})


def test_real_runtime_config_toml_table_cluster(tmp_path: Path) -> None:
    file = tmp_path / "t.toml"
    file.write_text('name = "b"\n[initial-cluster]\na = "http://h:1"\nb = ["http://h:2"]\n')
    config = load_config(["--config-file", str(file)], {})
    assert config.peer_urls_of("b") == ("http://h:2",)
    assert config.peer_addresses() == {config.member_ids()["a"]: ("h", 1)}
