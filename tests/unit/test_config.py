from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from wiretape import config as config_module
from wiretape.config import (
    AppConfig,
    Config,
    DepConfig,
    TlsConfig,
    apply_overrides,
    config_from_flags,
    find_config,
    load_config,
    render_env,
    validate_templates,
)
from wiretape.errors import ConfigError

FULL = """\
app:
  command: uvicorn shop.main:app --port 8000
  port: 8000
  health: /healthz
  env:
    DATABASE_URL: postgresql://shop:pw@{deps.db}/shop
    PAYMENTS_URL: http://{deps.payments}
    WORKERS: 4
    VERSION: 1.10
    LITERAL: "{{not a template}} {secret}"
  cwd: src
  startup_timeout: 12.5
deps:
  payments: {protocol: http, upstream: https://payments.example.test/v1/}
  db:       {protocol: postgres, upstream: 127.0.0.1:5432}
  cache:
    protocol: redis
    upstream: "[::1]:6379"
outbound_http: off
listen: 0.0.0.0:8080
set: my-set
dir: recordings
tls:
  extra_ca: certs/test-ca.pem
  verify_upstream: false
noise:
  - header.X-Request-Id
  - body.items[*].id
"""

MINIMAL = """\
app:
  command: ./run.sh
  port: 8000
"""


def write(tmp_path: Path, text: str, name: str = "wiretape.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path)
    return info.value


@pytest.fixture
def full(tmp_path: Path) -> Config:
    (tmp_path / "src").mkdir()
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "test-ca.pem").write_text("pem", encoding="utf-8")
    return load_config(write(tmp_path, FULL))


# --- valid files -----------------------------------------------------------------------------


def test_full_config_is_typed(full: Config, tmp_path: Path) -> None:
    assert full.path == tmp_path / "wiretape.yaml"
    assert full.app == AppConfig(
        command="uvicorn shop.main:app --port 8000",
        port=8000,
        health="/healthz",
        env={
            "DATABASE_URL": "postgresql://shop:pw@{deps.db}/shop",
            "PAYMENTS_URL": "http://{deps.payments}",
            "WORKERS": "4",
            "VERSION": "1.10",
            "LITERAL": "{{not a template}} {secret}",
        },
        cwd=tmp_path / "src",
        startup_timeout=12.5,
    )
    assert full.deps == {
        "payments": DepConfig("payments", "http", "https://payments.example.test/v1/"),
        "db": DepConfig("db", "postgres", "127.0.0.1:5432"),
        "cache": DepConfig("cache", "redis", "[::1]:6379"),
    }
    assert full.outbound_http == "off"
    assert (full.listen_host, full.listen_port) == ("0.0.0.0", 8080)
    assert full.set_name == "my-set"
    assert full.dir == tmp_path / "recordings"
    assert full.tls == TlsConfig(extra_ca=tmp_path / "certs" / "test-ca.pem", verify_upstream=False)
    assert full.noise == ("header.X-Request-Id", "body.items[*].id")


def test_lines_are_kept_and_not_part_of_equality(full: Config) -> None:
    assert full.lines["app.port"] == 3
    assert full.lines["app.env.PAYMENTS_URL"] == 7
    assert full.lines["deps.cache.upstream"] == 18
    assert full.lines["noise[1]"] == 28
    assert dataclasses.replace(full, lines={}) == full
    assert "lines=" not in repr(full)


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.app.health is None
    assert cfg.app.env == {}
    assert cfg.app.cwd == tmp_path
    assert cfg.app.startup_timeout == 30.0
    assert cfg.deps == {}
    assert cfg.outbound_http == "proxy"
    assert (cfg.listen_host, cfg.listen_port) == ("127.0.0.1", 0)
    assert cfg.set_name is None
    assert cfg.dir == tmp_path / "wiretape"
    assert cfg.tls == TlsConfig(extra_ca=None, verify_upstream=True)
    assert cfg.noise == ()


def test_relative_paths_are_relative_to_the_config_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    path = write(project, MINIMAL + "dir: sets\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(Path("project/wiretape.yaml"))
    assert cfg.dir == path.parent / "sets"
    assert cfg.dir.is_absolute()


def test_empty_sections_mean_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL + "deps:\ntls:\nnoise:\n"))
    assert cfg.deps == {}
    assert cfg.tls.verify_upstream is True
    assert cfg.noise == ()


def test_health_may_be_a_full_url(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL + "  health: http://127.0.0.1:9000/ready\n"))
    assert cfg.app.health == "http://127.0.0.1:9000/ready"


def test_quoted_port_and_byte_order_mark_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "wiretape.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.replace("8000", '"8000"').encode())
    assert load_config(path).app.port == 8000


def test_yml_extension_and_anchors_work(tmp_path: Path) -> None:
    text = """\
    app: {command: x, port: 1}
    deps:
      a: &pg {protocol: postgres, upstream: "db:5432"}
      b: *pg
    """
    cfg = load_config(write(tmp_path, text, name="wiretape.yml"))
    assert cfg.deps["b"] == DepConfig("b", "postgres", "db:5432")


# --- dependencies ----------------------------------------------------------------------------


def test_http_dep_helpers(full: Config) -> None:
    payments = full.deps["payments"]
    assert payments.upstream_scheme == "https"
    assert payments.upstream_host == "payments.example.test"
    assert payments.upstream_port == 443
    assert payments.upstream_prefix == "/v1"
    assert (payments.host, payments.port) == ("payments.example.test", 443)


@pytest.mark.parametrize(
    ("upstream", "scheme", "host", "port", "prefix"),
    [
        ("http://api.test", "http", "api.test", 80, ""),
        ("http://api.test/", "http", "api.test", 80, ""),
        ("HTTPS://API.test:8443/a/b", "https", "api.test", 8443, "/a/b"),
        ("http://[::1]:9000/x", "http", "::1", 9000, "/x"),
    ],
)
def test_http_upstream_parts(upstream: str, scheme: str, host: str, port: int, prefix: str) -> None:
    dep = DepConfig("d", "http", upstream)
    assert (dep.upstream_scheme, dep.upstream_host, dep.upstream_port, dep.upstream_prefix) == (
        scheme,
        host,
        port,
        prefix,
    )


def test_host_port_dep_helpers(full: Config) -> None:
    assert (full.deps["db"].host, full.deps["db"].port) == ("127.0.0.1", 5432)
    assert (full.deps["cache"].host, full.deps["cache"].port) == ("::1", 6379)
    assert full.deps["db"].upstream_scheme == ""
    assert full.deps["db"].upstream_prefix == ""


@pytest.mark.parametrize("protocol", ["postgres", "redis", "mysql", "tcp", "auto"])
def test_every_non_http_protocol_takes_host_port(tmp_path: Path, protocol: str) -> None:
    text = MINIMAL + f"deps:\n  x: {{protocol: {protocol}, upstream: 'db.local:1234'}}\n"
    assert load_config(write(tmp_path, text)).deps["x"].port == 1234


@pytest.mark.parametrize(
    ("protocol", "upstream", "hint_part"),
    [
        ("http", "payments.example.test", "http:// or https://"),
        ("http", "ftp://x.test", "http:// or https://"),
        ("http", "https://x.test/v1?key=1", "query or fragment"),
        ("http", "https://x.test/v1#top", "query or fragment"),
        ("http", "https://x.test:99999", "port"),
        ("http", "https://user:pw@x.test", "user:password@"),
        ("http", "https:///path", "no host"),
        ("postgres", "127.0.0.1", None),
        ("postgres", "127.0.0.1:0", None),
        ("postgres", "127.0.0.1:70000", None),
        ("redis", "redis://127.0.0.1:6379", "without a scheme"),
        ("tcp", "[not-v6]:80", None),
    ],
)
def test_bad_upstreams(tmp_path: Path, protocol: str, upstream: str, hint_part: str | None) -> None:
    text = MINIMAL + f"deps:\n  x:\n    protocol: {protocol}\n    upstream: '{upstream}'\n"
    err = load_error(tmp_path, text)
    assert err.line == 7
    assert err.message.startswith("deps.x.upstream: expected ")
    assert repr(upstream) in err.message
    if hint_part is not None:
        assert err.hint is not None and hint_part in err.hint


def test_unknown_protocol_suggests_the_closest(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "deps:\n  db: {protocol: postgress, upstream: 'h:1'}\n")
    assert err.line == 5
    assert err.message == (
        "deps.db.protocol: expected one of http, postgres, redis, mysql, tcp, auto, got 'postgress'"
    )
    assert err.hint is not None and err.hint.startswith("did you mean 'postgres'?")


@pytest.mark.parametrize("name", ["9lives", "has.dot", "sp ace", "-x"])
def test_bad_dep_names(tmp_path: Path, name: str) -> None:
    err = load_error(tmp_path, MINIMAL + f"deps:\n  '{name}': {{protocol: tcp, upstream: 'h:1'}}\n")
    assert (err.line, err.message) == (5, f"deps: invalid dependency name {name!r}")


def test_reserved_dep_name(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "deps:\n  outbound: {protocol: tcp, upstream: 'h:1'}\n")
    assert (err.line, err.message) == (5, "deps: the name 'outbound' is reserved")


def test_dep_written_as_a_string(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "deps:\n  payments: https://x.test\n")
    assert err.line == 5
    assert err.message == "deps.payments: expected a mapping (key: value), got 'https://x.test'"
    assert err.hint is not None and "protocol: http" in err.hint


def test_missing_dep_key_is_reported_at_the_dep(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "deps:\n  db:\n    protocol: postgres\n")
    assert (err.line, err.message) == (5, "deps.db: missing required key 'upstream'")


# --- structural errors -----------------------------------------------------------------------


def test_unknown_key_with_suggestion(tmp_path: Path) -> None:
    err = load_error(tmp_path, "app:\n  comand: x\n  port: 1\n")
    assert (err.line, err.message) == (2, "app: unknown key 'comand'")
    assert err.hint == (
        "did you mean 'command'? known keys: command, port, health, env, cwd, startup_timeout"
    )
    assert str(err).startswith(f"{err.file}:2: app: unknown key 'comand'\n  hint: did you mean")


def test_unknown_key_without_a_close_match_lists_the_keys(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "zzz: 1\n")
    assert (err.line, err.message) == (4, "the config: unknown key 'zzz'")
    assert err.hint is not None
    assert "did you mean" not in err.hint
    assert err.hint.startswith("known top-level keys: app, deps,")


def test_unknown_tls_key(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "tls:\n  verify: false\n")
    assert (err.line, err.message) == (5, "tls: unknown key 'verify'")
    assert err.hint is not None and err.hint.startswith("did you mean 'verify_upstream'?")


def test_duplicate_keys(tmp_path: Path) -> None:
    err = load_error(tmp_path, "app:\n  command: a\n  port: 1\n  command: b\n")
    assert (err.line, err.message) == (4, "app.command: duplicate key (first defined on line 2)")
    assert err.hint is not None and "remove one" in err.hint


def test_duplicate_top_level_section(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "deps: {}\ndeps: {}\n")
    assert (err.line, err.message) == (5, "deps: duplicate key (first defined on line 4)")


def test_duplicate_env_var(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "  env:\n    A: 1\n    B: 2\n    A: 3\n")
    assert (err.line, err.message) == (7, "app.env.A: duplicate key (first defined on line 5)")


def test_missing_required_keys_point_at_the_parent(tmp_path: Path) -> None:
    err = load_error(tmp_path, "# comment\n\napp:\n  command: x\n")
    assert (err.line, err.message) == (3, "app: missing required key 'port'")
    assert err.hint is not None and "port: 8000" in err.hint
    err = load_error(tmp_path, "deps: {}\n")
    assert (err.line, err.message) == (1, "the config: missing required key 'app'")


def test_empty_app_section(tmp_path: Path) -> None:
    err = load_error(tmp_path, "listen: '127.0.0.1:0'\napp:\n")
    assert (err.line, err.message) == (2, "app: missing required key 'command'")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    err = load_error(tmp_path, "- app\n")
    assert (err.line, err.message) == (1, "the config: expected a mapping (key: value), got a list")


def test_section_of_the_wrong_shape(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "noise: header.Date\n")
    assert (err.line, err.message) == (4, "noise: expected a list, got 'header.Date'")
    err = load_error(tmp_path, MINIMAL + "tls: [a]\n")
    assert (err.line, err.message) == (4, "tls: expected a mapping (key: value), got a list")


def test_empty_file(tmp_path: Path) -> None:
    err = load_error(tmp_path, "# nothing here\n")
    assert err.line is None
    assert err.message == "the config file is empty"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.message == "config file not found"
    assert info.value.file == str(tmp_path / "nope.yaml")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "wiretape.yaml"
    path.write_bytes(b"app:\n  command: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.line == 2
    assert "UTF-8" in info.value.message


@pytest.mark.parametrize(
    ("text", "line", "hint_part"),
    [
        ("app:\n  command: x\n\tport: 1\n", 3, "tabs"),
        ("app: {command: x, port: 1\nlisten: a\n", 2, "indentation"),
        ("app:\n  command: x\n port: 1\n", 3, "indentation"),
        ("app: {command: x, port: 1}\n---\nother: 1\n", 2, "'---'"),
        ("app: {command: *nope, port: 1}\n", 1, "indentation"),
    ],
)
def test_yaml_syntax_errors_have_a_line(
    tmp_path: Path, text: str, line: int, hint_part: str
) -> None:
    path = tmp_path / "wiretape.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.message.startswith("invalid YAML: ")
    assert info.value.line == line
    assert info.value.hint is not None and hint_part in info.value.hint


def test_control_character_is_a_yaml_error_with_line(tmp_path: Path) -> None:
    path = tmp_path / "wiretape.yaml"
    path.write_text("app:\n  command: a\x01b\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.message.startswith("invalid YAML: ")
    assert info.value.line == 2


@pytest.mark.parametrize(
    "text",
    ["  health: !!python/object:os.system /x\n", "  health: !custom /x\n", "  env: !!set {a}\n"],
)
def test_tags_are_refused(tmp_path: Path, text: str) -> None:
    err = load_error(tmp_path, MINIMAL + text)
    assert err.line == 4
    assert "unsupported YAML tag" in err.message


def test_merge_keys_are_refused(tmp_path: Path) -> None:
    text = "base: &b {command: x}\napp:\n  <<: *b\n  port: 1\n"
    err = load_error(tmp_path, text)
    # `base` is reported first: it is not a known key.
    assert (err.line, err.message) == (1, "the config: unknown key 'base'")
    text = "app:\n  <<: {command: x}\n  port: 1\n"
    err = load_error(tmp_path, text)
    assert (err.line, err.message) == (2, "app: merge keys ('<<') are not supported")


# --- value errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line_text", "message"),
    [
        ("  port: abc", "app.port: expected an integer 1-65535, got 'abc'"),
        ("  port: 0", "app.port: expected an integer 1-65535, got '0'"),
        ("  port: 65536", "app.port: expected an integer 1-65535, got '65536'"),
        ("  port: true", "app.port: expected an integer 1-65535, got 'true'"),
        ("  port: 80.5", "app.port: expected an integer 1-65535, got '80.5'"),
        ("  port:", "app.port: expected an integer 1-65535, got nothing"),
        ("  port: [1]", "app.port: expected an integer 1-65535, got a list"),
        ("  command: ''", "app.command: expected a non-empty shell command"),
        ("  command: {a: 1}", "app.command: expected a non-empty shell command"),
        ("  health: healthz", "app.health: expected a URL path starting with '/'"),
        ("  health: ftp://x/", "app.health: expected a URL path starting with '/'"),
        (
            "  startup_timeout: 0",
            "app.startup_timeout: expected a number of seconds greater than 0",
        ),
        ("  startup_timeout: -1", "app.startup_timeout: expected a number of seconds"),
        ("  startup_timeout: .inf", "app.startup_timeout: expected a number of seconds"),
        ("  startup_timeout: soon", "app.startup_timeout: expected a number of seconds"),
        ("  cwd: ''", "app.cwd: expected a file system path, got ''"),
    ],
)
def test_bad_app_values(tmp_path: Path, line_text: str, message: str) -> None:
    key = line_text.split(":")[0].strip()
    lines = ["app:", "  command: x", "  port: 1"]
    lines = [ln for ln in lines if ln.split(":")[0].strip() != key] + [line_text]
    err = load_error(tmp_path, "\n".join(lines) + "\n")
    assert err.message.startswith(message)
    assert err.line == len(lines)


def test_cwd_must_exist(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "  cwd: missing\n")
    assert err.line == 4
    assert err.message == f"app.cwd: directory {str(tmp_path / 'missing')!r} does not exist"
    assert err.hint is not None and "relative to its directory" in err.hint


def test_extra_ca_must_exist(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "tls:\n  extra_ca: ca.pem\n")
    assert err.line == 5
    assert err.message.startswith("tls.extra_ca: file ")


@pytest.mark.parametrize(
    ("line_text", "message"),
    [
        ("outbound_http: maybe", "outbound_http: expected 'proxy' or 'off', got 'maybe'"),
        ("outbound_http: on", "outbound_http: expected 'proxy' or 'off', got 'on'"),
        ("listen: nowhere", "listen: expected HOST:PORT with a port 0-65535"),
        ("listen: 'h:65536'", "listen: expected HOST:PORT"),
        ("listen: ':80'", "listen: expected HOST:PORT"),
        ("set: ../up", "set: expected a set name of letters"),
        ("set: .hidden", "set: expected a set name of letters"),
        ("set: yes", "set: expected a set name of letters"),
        ("dir: [a]", "dir: expected a file system path, got a list"),
        ("noise: [header.Date, '']", "noise[1]: expected a noise path"),
        ("noise: [{a: b}]", "noise[0]: expected a noise path"),
        ("tls: {verify_upstream: 'no'}", "tls.verify_upstream: expected true or false, got 'no'"),
    ],
)
def test_bad_top_level_values(tmp_path: Path, line_text: str, message: str) -> None:
    err = load_error(tmp_path, MINIMAL + line_text + "\n")
    assert err.line == 4
    assert err.message.startswith(message)


def test_listen_without_host_hints_at_the_fix(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "listen: 8080\n")
    assert err.hint == "add the host, e.g. '127.0.0.1:8080'"


def test_outbound_http_spellings(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL + "outbound_http: 'off'\n")).outbound_http == "off"
    assert load_config(write(tmp_path, MINIMAL + "outbound_http: Proxy\n")).outbound_http == "proxy"


def test_listen_accepts_ipv6_and_port_zero(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL + "listen: '[::1]:0'\n"))
    assert (cfg.listen_host, cfg.listen_port) == ("::1", 0)


def test_numeric_set_name_keeps_its_text(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL + "set: 0123\n")).set_name == "0123"


# --- env values ------------------------------------------------------------------------------


def test_env_numbers_and_dates_keep_the_text_written(tmp_path: Path) -> None:
    text = (
        MINIMAL + "  env:\n    A: 0x1F\n    B: 1.50\n    C: 2024-01-02\n    D: ''\n    E: 1_000\n"
    )
    env = load_config(write(tmp_path, text)).app.env
    assert env == {"A": "0x1F", "B": "1.50", "C": "2024-01-02", "D": "", "E": "1_000"}


@pytest.mark.parametrize("value", ["true", "no", "Off", "YES"])
def test_env_booleans_are_rejected_with_a_hint_to_quote(tmp_path: Path, value: str) -> None:
    err = load_error(tmp_path, MINIMAL + f"  env:\n    DEBUG: {value}\n")
    assert err.line == 5
    assert err.message == f"app.env.DEBUG: expected a string, got {value!r}"
    assert err.hint is not None and "quote the value" in err.hint


def test_env_empty_value_is_rejected(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "  env:\n    EMPTY:\n    OTHER: x\n")
    assert (err.line, err.message) == (5, "app.env.EMPTY: expected a string, got nothing")
    assert err.hint == 'write "" for an empty value'


def test_env_nested_value_is_rejected(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "  env:\n    X:\n      - 1\n")
    assert err.line == 6
    assert err.message.startswith("app.env.X: expected a string (a single line")


def test_env_name_with_equals_is_rejected(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "  env:\n    'A=B': x\n")
    assert (err.line, err.message) == (5, "app.env.A=B: invalid environment variable name 'A=B'")


def test_env_unknown_dep_is_reported_at_the_env_line(tmp_path: Path) -> None:
    text = MINIMAL + (
        "  env:\n"
        "    OK: '{deps.db}'\n"
        "    PAYMENTS_URL: http://{deps.paymnts}/v1\n"
        "deps:\n"
        "  db: {protocol: postgres, upstream: 'h:5432'}\n"
        "  payments: {protocol: http, upstream: 'http://p.test'}\n"
    )
    err = load_error(tmp_path, text)
    assert err.line == 6
    assert (
        err.message == "app.env.PAYMENTS_URL: {deps.paymnts} names an unknown dependency 'paymnts'"
    )
    assert err.hint == (
        "did you mean 'payments'? declared deps: db, payments; "
        "declare it under 'deps:' or fix the name"
    )


# --- templates -------------------------------------------------------------------------------

ADDRS = {"db": "127.0.0.1:5433", "payments": "127.0.0.1:40001", "v6": "[::1]:7000"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("postgresql://u:p@{deps.db}/shop", "postgresql://u:p@127.0.0.1:5433/shop"),
        ("{deps.db.host}|{deps.db.port}", "127.0.0.1|5433"),
        ("{deps.payments.url}/v1", "http://127.0.0.1:40001/v1"),
        ("{deps.v6.host} {deps.v6.port} {deps.v6}", "::1 7000 [::1]:7000"),
        ("{{deps.db}}", "{deps.db}"),
        ("{{{deps.db}}}", "{127.0.0.1:5433}"),
        ("a {{ b }} c", "a { b } c"),
        ("pw={secret}", "pw={secret}"),
        ("{secret.deps.x}", "{secret.deps.x}"),
        ("{}", "{}"),
        ("unclosed {deps.db", "unclosed {deps.db"),
        ("lone } brace", "lone } brace"),
        ("", ""),
        ("{deps.db}{deps.db}", "127.0.0.1:5433127.0.0.1:5433"),
    ],
)
def test_render_env(template: str, expected: str) -> None:
    assert render_env(template, ADDRS, where="app.env.X") == expected


def test_render_env_unknown_dep() -> None:
    with pytest.raises(ConfigError) as info:
        render_env("x={deps.dbb}", ADDRS, where="app.env.DATABASE_URL")
    err = info.value
    assert (err.file, err.line) == (None, None)
    assert err.message == "app.env.DATABASE_URL: {deps.dbb} names an unknown dependency 'dbb'"
    assert err.hint is not None
    assert err.hint.startswith("did you mean 'db'? declared deps: db, payments, v6")


def test_render_env_with_no_deps_says_so() -> None:
    with pytest.raises(ConfigError) as info:
        render_env("{deps.db}", {}, where="app.env.X")
    assert info.value.hint is not None and "declared deps: none" in info.value.hint


def test_render_env_unknown_field() -> None:
    with pytest.raises(ConfigError) as info:
        render_env("{deps.db.scheme}", ADDRS, where="app.env.X")
    assert info.value.message == "app.env.X: {deps.db.scheme} asks for an unknown field 'scheme'"
    assert info.value.hint == "use {deps.db}, {deps.db.host}, {deps.db.port}, {deps.db.url}"


def test_validate_templates_points_at_the_env_line(full: Config) -> None:
    validate_templates(full)
    env = dict(full.app.env, PAYMENTS_URL="http://{deps.nope}")
    broken = dataclasses.replace(full, app=dataclasses.replace(full.app, env=env))
    with pytest.raises(ConfigError) as info:
        validate_templates(broken)
    assert (info.value.file, info.value.line) == (str(full.path), 7)
    assert info.value.message.startswith("app.env.PAYMENTS_URL: {deps.nope} names an unknown")


def test_validate_templates_without_a_file(full: Config) -> None:
    env = {"X": "{deps.nope}"}
    broken = dataclasses.replace(full, path=None, app=dataclasses.replace(full.app, env=env))
    with pytest.raises(ConfigError) as info:
        validate_templates(broken)
    assert (info.value.file, info.value.line) == (None, None)


# --- overrides -------------------------------------------------------------------------------


def test_overrides_replace_file_values(
    full: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other-ca.pem").write_text("pem", encoding="utf-8")
    cfg = apply_overrides(
        full,
        command="python -m shop",
        port="9000",
        health="/ready",
        listen="127.0.0.1:0",
        set_name="nightly",
        dir="out",
        outbound_http="proxy",
        extra_ca="other-ca.pem",
        verify_upstream=True,
        startup_timeout=5,
    )
    assert cfg.app.command == "python -m shop"
    assert cfg.app.port == 9000
    assert cfg.app.health == "/ready"
    assert cfg.app.startup_timeout == 5.0
    assert (cfg.listen_host, cfg.listen_port) == ("127.0.0.1", 0)
    assert cfg.set_name == "nightly"
    assert cfg.dir == tmp_path / "out"
    assert cfg.outbound_http == "proxy"
    assert cfg.tls == TlsConfig(extra_ca=tmp_path / "other-ca.pem", verify_upstream=True)
    assert cfg.app.env == full.app.env
    assert cfg.deps == full.deps
    assert cfg.path == full.path
    assert "app.port" not in cfg.lines
    assert cfg.lines["app.env.PAYMENTS_URL"] == 7


def test_none_overrides_change_nothing(full: Config) -> None:
    assert apply_overrides(full, port=None, listen=None, extra_ca=None) == full


def test_override_paths_are_relative_to_the_current_directory(
    full: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert apply_overrides(full, dir=Path("sets")).dir == elsewhere / "sets"


@pytest.mark.parametrize(
    ("key", "value", "message", "flag"),
    [
        ("port", "abc", "--port: expected an integer 1-65535, got 'abc'", "--port"),
        ("port", 0, "--port: expected an integer 1-65535, got 0", "--port"),
        ("listen", "8080", "--listen: expected HOST:PORT", "--listen"),
        ("health", "ready", "--health: expected a URL path", "--health"),
        ("set_name", "a/b", "--set: expected a set name", "--set"),
        ("outbound_http", "on", "--outbound-http: expected 'proxy' or 'off'", "--outbound-http"),
        (
            "verify_upstream",
            "yes",
            "--verify-upstream: expected true or false",
            "--verify-upstream",
        ),
        ("startup_timeout", "-3", "--startup-timeout: expected a number", "--startup-timeout"),
        ("command", "  ", "--command: expected a non-empty shell command", "--command"),
        ("dir", "", "--dir: expected a file system path", "--dir"),
    ],
)
def test_bad_overrides_name_the_flag(
    full: Config, key: str, value: object, message: str, flag: str
) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(full, **{key: value})
    assert (info.value.file, info.value.line) == (None, None)
    assert info.value.message.startswith(message)
    assert info.value.hint is not None and flag in info.value.hint


def test_override_extra_ca_must_exist(
    full: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        apply_overrides(full, extra_ca="missing.pem")
    assert info.value.file is None
    assert info.value.hint is not None and "--extra-ca" in info.value.hint


def test_unknown_override_is_a_programming_error(full: Config) -> None:
    with pytest.raises(TypeError, match="colour"):
        apply_overrides(full, colour="red")


def test_config_from_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = config_from_flags(command="./serve", port=8000, set_name="s1")
    assert cfg.path is None
    assert (cfg.app.command, cfg.app.port, cfg.app.cwd) == ("./serve", 8000, tmp_path)
    assert cfg.set_name == "s1"
    assert cfg.dir == tmp_path / "wiretape"
    assert cfg.deps == {}
    with pytest.raises(ConfigError) as info:
        config_from_flags(command="./serve")
    assert info.value.hint is not None and "--port" in info.value.hint


# --- find_config -----------------------------------------------------------------------------


def test_find_config_walks_up(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert find_config(deep) == path
    assert find_config(tmp_path) == path


def test_find_config_prefers_the_nearest_and_yaml_over_yml(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL)
    inner = tmp_path / "svc"
    inner.mkdir()
    yml = write(inner, MINIMAL, name="wiretape.yml")
    assert find_config(inner) == yml
    yaml_file = write(inner, MINIMAL)
    assert find_config(inner) == yaml_file


def test_find_config_from_a_file_and_ignores_directories(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "wiretape.yaml").mkdir()
    start = tmp_path / "sub" / "main.py"
    start.write_text("", encoding="utf-8")
    found = find_config(start)
    assert found is None or found != tmp_path / "sub" / "wiretape.yaml"
    path = write(tmp_path, MINIMAL)
    assert find_config(start) == path


def test_find_config_relative_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, MINIMAL)
    (tmp_path / "x").mkdir()
    monkeypatch.chdir(tmp_path)
    found = find_config(Path("x"))
    assert found is not None and found.absolute() == path


def test_public_names() -> None:
    for name in config_module.__all__:
        assert hasattr(config_module, name)


def test_bad_noise_path_is_rejected_with_line(tmp_path: Path) -> None:
    cfg = tmp_path / "wiretape.yaml"
    cfg.write_text("app:\n  command: x\n  port: 8000\nnoise:\n  - body.items[\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert info.value.line == 5
    assert "noise" in str(info.value)


DB_DEP = """
app: {command: run, port: 8000}
deps:
  db:
    protocol: postgres
    upstream: 127.0.0.1:5432
"""


def test_database_dep_options(tmp_path: Path) -> None:
    text = DB_DEP + (
        "    upstream_tls: verify-full\n"
        "    client_tls: decline\n"
        "    request_noise:\n"
        "    - {sql: INSERT INTO orders, params: [7, 8]}\n"
    )
    dep = load_config(write(tmp_path, text)).deps["db"]
    assert (dep.upstream_tls, dep.client_tls) == ("verify-full", "decline")
    assert dep.request_noise == (("INSERT INTO orders", (7, 8)),)
    default = load_config(write(tmp_path, DB_DEP)).deps["db"]
    assert (default.upstream_tls, default.client_tls, default.request_noise) == (
        "prefer",
        "accept",
        (),
    )


@pytest.mark.parametrize(
    ("extra", "line", "problem"),
    [
        ("    upstream_tls: sometimes\n", 7, "one of disable, prefer, require, verify-full"),
        ("    client_tls: yes\n", 7, "one of accept, decline"),
        ("    request_noise:\n    - {sql: INSERT, params: [0]}\n", 8, "parameter number"),
        ("    request_noise:\n    - {params: [1]}\n", 8, "sql"),
        ("    request_noise:\n    - {sql: '  ', params: [1]}\n", 8, "start of a SQL statement"),
        ("    max_message_size: 10\n", 7, "from 1024"),
    ],
)
def test_bad_database_dep_options(tmp_path: Path, extra: str, line: int, problem: str) -> None:
    err = load_error(tmp_path, DB_DEP + extra)
    assert f":{line}:" in str(err)
    assert problem in str(err)


@pytest.mark.parametrize(("protocol", "upstream"), [("http", "http://x"), ("tcp", "x:1")])
def test_tls_options_belong_to_databases_and_auto(
    tmp_path: Path, protocol: str, upstream: str
) -> None:
    text = f"app: {{command: run, port: 8000}}\ndeps:\n  api:\n    protocol: {protocol}\n"
    text += f"    upstream: {upstream}\n    upstream_tls: require\n"
    err = load_error(tmp_path, text)
    assert ":6:" in str(err) and "only postgres, mysql, redis and auto" in str(err)


def test_auto_deps_take_tls_options(tmp_path: Path) -> None:
    text = "app: {command: run, port: 8000}\ndeps:\n  legacy:\n    protocol: auto\n"
    text += "    upstream: 10.0.0.7:7000\n    upstream_tls: verify-full\n    client_tls: decline\n"
    dep = load_config(write(tmp_path, text)).deps["legacy"]
    assert (dep.upstream_tls, dep.client_tls) == ("verify-full", "decline")


def test_order_rules_travel_with_noise_paths(tmp_path: Path) -> None:
    text = "app: {command: run, port: 8000}\nnoise:\n- body.id\n- unordered(body.items)\n"
    assert load_config(write(tmp_path, text)).noise == ("body.id", "unordered(body.items)")
    err = load_error(tmp_path, "app: {command: run, port: 8000}\nnoise:\n- unordered(body[)\n")
    assert ":3:" in str(err) and "unordered(body.items)" in str(err)


def test_mysql_request_noise_names_statement_values(tmp_path: Path) -> None:
    text = (
        "app: {command: run, port: 8000}\ndeps:\n  db:\n    protocol: mysql\n"
        "    upstream: 127.0.0.1:3306\n    request_noise:\n"
        "    - {sql: INSERT INTO orders, params: [2]}\n"
    )
    assert load_config(write(tmp_path, text)).deps["db"].request_noise == (
        ("INSERT INTO orders", (2,)),
    )
    tcp = text.replace("protocol: mysql", "protocol: tcp")
    assert "only http, postgres, mysql and redis" in str(load_error(tmp_path, tcp))


def test_redis_request_noise_names_command_arguments(tmp_path: Path) -> None:
    text = (
        "app: {command: run, port: 8000}\ndeps:\n  cache:\n    protocol: redis\n"
        "    upstream: 127.0.0.1:6379\n    request_noise:\n    - {command: set, args: [1]}\n"
    )
    assert load_config(write(tmp_path, text)).deps["cache"].request_noise == (("SET", (1,)),)
    bad = text.replace("{command: set, args: [1]}", "{sql: set, params: [1]}")
    assert "command" in str(load_error(tmp_path, bad))


def test_lane_poll_us_defaults_to_150_and_takes_0_to_1000(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL)).lane_poll_us == 150
    for value in (0, 7, 1000):
        cfg = load_config(write(tmp_path, MINIMAL + f"lane_poll_us: {value}\n"))
        assert cfg.lane_poll_us == value


@pytest.mark.parametrize("value", ["-1", "1001", "fast", "true", "0.5", "'50'"])
def test_bad_lane_poll_us_is_rejected_with_its_line(tmp_path: Path, value: str) -> None:
    err = load_error(tmp_path, MINIMAL + f"lane_poll_us: {value}\n")
    assert ":4:" in str(err) and "microseconds from 0 to 1000" in str(err)
