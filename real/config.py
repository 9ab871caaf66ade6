"""ServerConfig: a node's settings from a TOML file, CHAINFIRE_* variables and flags.

Theory of operation
-------------------
Every setting is one `_Field` with a name spelled three ways: `--data-dir`
(flag), `CHAINFIRE_DATA_DIR` (environment), `data-dir` or `data_dir` (key in
the TOML file named by `--config-file` / `CHAINFIRE_CONFIG_FILE`). Sources
are layered lowest to highest: built-in defaults, the file, the
environment, the flags; the highest source that sets a field wins, and only
that value is parsed. Each raw value is parsed and checked by its field's
parser, and a bad one raises `ConfigError` naming the field, where the value
came from and why it is refused. Unknown keys in the file and unknown flags
are errors; unknown CHAINFIRE_* variables are ignored (other tools use the
prefix too).

With nothing set, a node named `default` forms a single-node cluster with
clients on http://localhost:2379, peers on http://localhost:2380, and its data
in ./default.chainfire (etcd's defaults, with etcd's "default.etcd" renamed).

Member ids: a member's id is a hash of the cluster token and its sorted peer
URLs (`member_id`), as etcd derives them, so every node computes the same ids
from the same `--initial-cluster`, and a member added later (MemberAdd) gets
the id its own node will compute from its peer URLs.
"""

from __future__ import annotations

import argparse
import hashlib
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from chainfire_core.errors import ChainfireError
from chainfire_core.quota import DEFAULT_QUOTA_BACKEND_BYTES
from chainfire_core.types import NodeId
from real.tls import TLSConfigError, TLSFiles

ENV_PREFIX = "CHAINFIRE_"
DEFAULT_NAME = "default"
DEFAULT_CLIENT_URL = "http://localhost:2379"
DEFAULT_PEER_URL = "http://localhost:2380"
DEFAULT_CLUSTER_TOKEN = "chainfire-cluster"
CLUSTER_STATES = ("new", "existing")
# etcd's rule: an election timeout shorter than 5 heartbeats elects on every hiccup.
MIN_ELECTION_HEARTBEATS = 5
# The shortest gossip period (its probe and nack timeouts are fractions of it).
MIN_GOSSIP_PERIOD_MS = 10
_ID_MASK = (1 << 63) - 1


class ConfigError(ChainfireError):
    """A setting is missing, malformed or contradicts another one."""

    def __init__(self, field: str, reason: str, source: str = "") -> None:
        where = f" (from {source})" if source else ""
        super().__init__(f"config: {field}{where}: {reason}")
        self.field = field
        self.reason = reason
        self.source = source


@dataclass(frozen=True, slots=True)
class HttpUrl:
    url: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.url.startswith("https://")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    name: str = DEFAULT_NAME
    data_dir: Path = Path(f"{DEFAULT_NAME}.chainfire")
    listen_client_urls: tuple[HttpUrl, ...] = ()
    # The client URLs this member tells the cluster (member list); none: the
    # listen client URLs, with the ports they bound.
    advertise_client_urls: tuple[HttpUrl, ...] = ()
    listen_peer_urls: tuple[HttpUrl, ...] = ()
    # (member name, peer URL) pairs; a name may have several URLs.
    initial_cluster: tuple[tuple[str, HttpUrl], ...] = ()
    initial_cluster_state: str = "new"
    initial_cluster_token: str = DEFAULT_CLUSTER_TOKEN
    heartbeat_interval_ms: int = 100
    election_timeout_ms: int = 1000
    snapshot_count: int = 10_000
    # etcd's --quota-backend-bytes: writes past it raise the NOSPACE alarm.
    quota_backend_bytes: int = DEFAULT_QUOTA_BACKEND_BYTES
    # etcd's --auth-token-ttl: seconds a simple token lives unused.
    auth_token_ttl: int = 300
    # Where /metrics and /health are served over HTTP (etcd's flag); none: off.
    listen_metrics_urls: tuple[HttpUrl, ...] = ()
    # TLS (real/tls.py): for clients on https listen-client URLs, and mutual
    # TLS between peers when the peer URLs are https.
    cert_file: Path | None = None
    key_file: Path | None = None
    trusted_ca_file: Path | None = None
    client_cert_auth: bool = False
    peer_cert_file: Path | None = None
    peer_key_file: Path | None = None
    peer_trusted_ca_file: Path | None = None
    # SWIM gossip (real/gossip_cluster.py): UDP on the host and port of each
    # member's first peer URL; it only informs (events, metrics, logs).
    gossip: bool = True
    gossip_period_ms: int = 1000

    def __post_init__(self) -> None:
        assert self.listen_client_urls and self.listen_peer_urls and self.initial_cluster
        assert self.initial_cluster_state in CLUSTER_STATES, self.initial_cluster_state
        assert self.name in self.member_names()

    # -- derived -------------------------------------------------------------------

    def member_names(self) -> tuple[str, ...]:
        return tuple(sorted({name for name, _ in self.initial_cluster}))

    def peer_urls_of(self, name: str) -> tuple[str, ...]:
        return tuple(url.url for member, url in self.initial_cluster if member == name)

    def member_ids(self) -> dict[str, NodeId]:
        return {name: member_id(self.peer_urls_of(name), self.initial_cluster_token)
                for name in self.member_names()}

    @property
    def node_id(self) -> NodeId:
        return self.member_ids()[self.name]

    @property
    def cluster_id(self) -> int:
        ids = sorted(self.member_ids().values())
        return _hash_id(self.initial_cluster_token, *map(str, ids))

    def peer_addresses(self) -> dict[NodeId, tuple[str, int]]:
        """Where to reach every other member (its first peer URL)."""
        out: dict[NodeId, tuple[str, int]] = {}
        ids = self.member_ids()
        for name, url in self.initial_cluster:
            node_id = ids[name]
            if name != self.name and node_id not in out:
                out[node_id] = (url.host, url.port)
        return out

    def client_tls(self) -> TLSFiles:
        return TLSFiles(cert_file=self.cert_file, key_file=self.key_file,
                        trusted_ca_file=self.trusted_ca_file,
                        client_cert_auth=self.client_cert_auth)

    def peer_tls(self) -> TLSFiles:
        return TLSFiles(cert_file=self.peer_cert_file, key_file=self.peer_key_file,
                        trusted_ca_file=self.peer_trusted_ca_file, client_cert_auth=True,
                        prefix="peer-")

    @property
    def tick_ms(self) -> int:
        return self.heartbeat_interval_ms

    @property
    def election_ticks(self) -> int:
        return self.election_timeout_ms // self.heartbeat_interval_ms


def member_id(peer_urls: Sequence[str], cluster_token: str = DEFAULT_CLUSTER_TOKEN) -> NodeId:
    """The id of the member with these peer URLs (etcd's scheme: a hash)."""
    assert peer_urls, "a member needs a peer URL"
    return NodeId(_hash_id(cluster_token, *sorted(peer_urls)))


def _hash_id(*parts: str) -> int:
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") & _ID_MASK or 1


# -- parsers: raw value (a TOML value or a string) -> typed value ------------------------


def _text(raw: object) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"must be a string, got {type(raw).__name__}")
    return raw.strip()


def _name(raw: object) -> str:
    name = _text(raw)
    if not name:
        raise ValueError("must not be empty")
    if any(char in name for char in "=,"):
        raise ValueError(f"must not contain '=' or ',', got {name!r}")
    return name


def _int(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError(f"must be an integer, got {type(raw).__name__}")
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"must be an integer, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"must be > 0, got {value}")
    return value


def parse_url(text: str, *, allow_port_zero: bool = False) -> HttpUrl:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{text!r}: expected http://host:port or https://host:port")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r}: bad port") from None
    if not parts.hostname or port is None:
        raise ValueError(f"{text!r}: expected http://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{text!r}: a URL here has no path, query or fragment")
    if port == 0 and not allow_port_zero:
        raise ValueError(f"{text!r}: port 0 is only allowed for client URLs")
    return HttpUrl(url=f"{parts.scheme}://{parts.netloc}", host=parts.hostname, port=port)


def _items(raw: object) -> list[str]:
    if isinstance(raw, str):
        items = [item.strip() for item in raw.split(",")]
    elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        items = [str(item).strip() for item in raw]
    else:
        raise ValueError("must be a comma-separated string or a list of strings")
    if not items or not all(items):
        raise ValueError("must be a non-empty list without empty items")
    return items


def _urls(raw: object, *, allow_port_zero: bool) -> tuple[HttpUrl, ...]:
    return tuple(parse_url(item, allow_port_zero=allow_port_zero) for item in _items(raw))


def _cluster(raw: object) -> tuple[tuple[str, HttpUrl], ...]:
    pairs: list[tuple[str, str]] = []
    if isinstance(raw, dict):  # TOML table: name = "url" or name = ["url", ...]
        for name, urls in raw.items():
            pairs.extend((name, url) for url in _items(urls))
    else:
        for item in _items(raw):
            name, sep, url = item.partition("=")
            if not sep:
                raise ValueError(f"{item!r}: expected name=http://host:port")
            pairs.append((name, url))
    out = tuple((_name(name), parse_url(text)) for name, text in pairs)
    seen: dict[str, str] = {}
    for name, parsed in out:
        if seen.setdefault(parsed.url, name) != name:
            raise ValueError(f"peer URL {parsed.url} is given to both {seen[parsed.url]} "
                             f"and {name}")
    return out


def _path(raw: object) -> Path:
    text = _text(raw)
    if not text:
        raise ValueError("must name a file")
    return Path(text)


def _bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = _text(raw).lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {text!r}")


def _at_least(value: int, low: int) -> int:
    if value < low:
        raise ValueError(f"must be >= {low}, got {value}")
    return value


def _state(raw: object) -> str:
    state = _text(raw)
    if state not in CLUSTER_STATES:
        raise ValueError(f"must be 'new' or 'existing', got {state!r}")
    return state


@dataclass(frozen=True, slots=True)
class _Field:
    name: str  # the attribute of ServerConfig
    parse: Callable[[object], object]
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


FIELDS = (
    _Field("name", _name, "this member's name (default: default)"),
    _Field("data_dir", lambda raw: Path(_text(raw) or "."), "where the data lives "
           "(default: ./<name>.chainfire)"),
    _Field("listen_client_urls", lambda raw: _urls(raw, allow_port_zero=True),
           "URLs to serve clients on (default: http://localhost:2379)"),
    _Field("advertise_client_urls", lambda raw: _urls(raw, allow_port_zero=False),
           "client URLs to tell the cluster (member list; default: the listen client URLs)"),
    _Field("listen_peer_urls", lambda raw: _urls(raw, allow_port_zero=False),
           "URLs to serve peers on (default: http://localhost:2380)"),
    _Field("initial_cluster", _cluster, "name=peer-url,... of the bootstrap members "
           "(default: <name>=<first listen peer URL>)"),
    _Field("initial_cluster_state", _state, "new (bootstrap) or existing (join after MemberAdd)"),
    _Field("initial_cluster_token", _name, "a token unique to this cluster (it salts member ids)"),
    _Field("heartbeat_interval_ms", _int, "ms per heartbeat, the core's tick (default 100)"),
    _Field("election_timeout_ms", _int, "ms without a leader before an election (default 1000)"),
    _Field("snapshot_count", _int, "applied entries between snapshots (default 10000)"),
    _Field("auth_token_ttl", _int, "seconds an auth token lives unused (default 300)"),
    _Field("quota_backend_bytes", _int, "backend size that raises the NOSPACE alarm "
           "(default 2 GiB)"),
    _Field("listen_metrics_urls", lambda raw: _urls(raw, allow_port_zero=True),
           "URLs to serve /metrics and /health on over HTTP (default: none)"),
    _Field("cert_file", _path, "TLS certificate for https client URLs (PEM)"),
    _Field("key_file", _path, "TLS key of --cert-file (PEM)"),
    _Field("trusted_ca_file", _path, "CA that signs client certificates (PEM)"),
    _Field("client_cert_auth", _bool, "require a client certificate signed by "
           "--trusted-ca-file (true/false, default false)"),
    _Field("peer_cert_file", _path, "this member's peer certificate (https peer URLs; PEM)"),
    _Field("peer_key_file", _path, "TLS key of --peer-cert-file (PEM)"),
    _Field("peer_trusted_ca_file", _path, "CA that signs every member's peer certificate"),
    _Field("gossip", _bool, "SWIM failure detection over UDP on the peer port, reporting "
           "only (on/off, default on)"),
    _Field("gossip_period_ms", lambda raw: _at_least(_int(raw), MIN_GOSSIP_PERIOD_MS),
           "ms per gossip probe period (default 1000)"),
)
_BY_NAME = {field.name: field for field in FIELDS}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError("command line", message)


def _flag_parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="Run one Chainfire node.", allow_abbrev=False)
    parser.add_argument("--config-file", help="a TOML file of settings (keys as the flags)")
    for field in FIELDS:
        parser.add_argument(field.flag, dest=field.name, help=field.help)
    return parser


def _read_file(path: str, source: str) -> dict[str, tuple[object, str]]:
    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except OSError as error:
        raise ConfigError("config-file", f"cannot read {path}: {error.strerror}", source) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError("config-file", f"{path} is not valid TOML: {error}", source) from None
    out: dict[str, tuple[object, str]] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in _BY_NAME:
            raise ConfigError(key, "unknown setting", f"config file {path}")
        out[name] = (value, f"config file {path}")
    return out


def load_config(argv: Sequence[str], env: Mapping[str, str],
                prog: str = "chainfire serve") -> ServerConfig:
    """Build the config from flags `argv`, environment `env` and the TOML file."""
    flags = vars(_flag_parser(prog).parse_args(list(argv)))
    raw: dict[str, tuple[object, str]] = {}
    flag_file = flags.pop("config_file")
    config_file = flag_file or env.get(ENV_PREFIX + "CONFIG_FILE")
    if config_file:
        source = "--config-file" if flag_file else ENV_PREFIX + "CONFIG_FILE"
        raw.update(_read_file(config_file, source))
    for field in FIELDS:
        if env.get(field.env) is not None:
            raw[field.name] = (env[field.env], field.env)
    for name, value in flags.items():
        if value is not None:
            raw[name] = (value, _BY_NAME[name].flag)
    values = {name: _parse(name, value, source) for name, (value, source) in raw.items()}
    return _complete(values, {name: source for name, (_, source) in raw.items()})


def _parse(name: str, value: object, source: str) -> object:
    try:
        return _BY_NAME[name].parse(value)
    except ValueError as error:
        raise ConfigError(_BY_NAME[name].flag[2:], str(error), source) from None


def _complete(values: dict[str, object], sources: dict[str, str]) -> ServerConfig:
    """Fill in the defaults that depend on other fields, and check relations."""
    name = str(values.setdefault("name", DEFAULT_NAME))
    values.setdefault("data_dir", Path(f"{name}.chainfire"))
    values.setdefault("listen_client_urls", (parse_url(DEFAULT_CLIENT_URL),))
    peer_urls = values.setdefault("listen_peer_urls", (parse_url(DEFAULT_PEER_URL),))
    assert isinstance(peer_urls, tuple)
    values.setdefault("initial_cluster", ((name, peer_urls[0]),))
    cluster = values["initial_cluster"]
    assert isinstance(cluster, tuple)
    if name not in {member for member, _ in cluster}:
        raise ConfigError("initial-cluster", f"does not name this member ({name!r})",
                          sources.get("initial_cluster", "default"))
    heartbeat = values.get("heartbeat_interval_ms", 100)
    election = values.get("election_timeout_ms", 1000)
    assert isinstance(heartbeat, int) and isinstance(election, int)
    if election < MIN_ELECTION_HEARTBEATS * heartbeat:
        raise ConfigError("election-timeout-ms", f"must be at least {MIN_ELECTION_HEARTBEATS} "
                          f"heartbeat intervals ({MIN_ELECTION_HEARTBEATS * heartbeat} ms), "
                          f"got {election}", sources.get("election_timeout_ms", "default"))
    config = ServerConfig(**values)  # type: ignore[arg-type]
    _check_tls(config, sources)
    ids = config.member_ids()
    if len(set(ids.values())) != len(ids):
        raise ConfigError("initial-cluster", "two members hash to the same id; change the "
                          "cluster token", sources.get("initial_cluster", "default"))
    return config


def _check_tls(config: ServerConfig, sources: dict[str, str]) -> None:
    """https URLs need their certificates; peer TLS is all or nothing."""
    for tls in (config.client_tls(), config.peer_tls()):
        if tls.enabled:
            try:
                tls.check()
            except TLSConfigError as error:
                raise ConfigError(error.field, error.reason,
                                  sources.get(error.field.replace("-", "_"), "")) from None
    https_clients = [url.url for url in config.listen_client_urls if url.tls]
    if https_clients and not config.client_tls().enabled:
        raise ConfigError("listen-client-urls", f"{https_clients[0]} needs --cert-file and "
                          "--key-file", sources.get("listen_client_urls", "default"))
    if config.client_cert_auth and not config.client_tls().enabled:
        raise ConfigError("client-cert-auth", "needs --cert-file and --key-file",
                          sources.get("client_cert_auth", ""))
    peer_urls = [*config.listen_peer_urls, *(url for _, url in config.initial_cluster)]
    secure = {url.tls for url in peer_urls}
    if secure == {True, False}:
        raise ConfigError("initial-cluster", "peer URLs mix http and https: peer TLS is "
                          "all or nothing", sources.get("initial_cluster", "default"))
    if secure == {True} and not config.peer_tls().enabled:
        raise ConfigError("listen-peer-urls", "https peer URLs need --peer-cert-file, "
                          "--peer-key-file and --peer-trusted-ca-file",
                          sources.get("listen_peer_urls", "default"))
    if secure == {False} and config.peer_tls().enabled:
        raise ConfigError("peer-cert-file", "peer certificates need https peer URLs",
                          sources.get("peer_cert_file", ""))


__all__ = ["ConfigError", "FIELDS", "HttpUrl", "ServerConfig", "load_config", "member_id",
           "parse_url"]
