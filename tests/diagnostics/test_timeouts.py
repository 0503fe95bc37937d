"""``diag timeouts``: nginx and HAProxy parsing, every finding kind, the command line.

The configurations under ``data/`` are real files: Debian 12's shipped
nginx.conf / default site / snippets and haproxy.cfg (paths made relative so
they can be checked anywhere), plus realistic reverse-proxy setups. Where the
binaries are installed, nginx -t and haproxy -c must accept every one of them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.diagnostics.finding_model import Finding, Severity, SourceRef, format_seconds
from bot.diagnostics.haproxy_config import (
    HaproxyProxy,
    load_haproxy_config,
    parse_haproxy_duration,
    parse_haproxy_text,
)
from bot.diagnostics.nginx_config import load_nginx_config, parse_nginx_duration, parse_nginx_text
from bot.diagnostics.timeouts import TimeoutReport, analyse_timeouts, parse_duration
from bot.errors import UserError
from handlers.cli import cli

DATA = Path(__file__).parent / "data"
NGINX_DEBIAN = DATA / "nginx" / "debian" / "nginx.conf"
NGINX_APP = DATA / "nginx" / "app" / "nginx.conf"
NGINX_FRONT = DATA / "nginx" / "front" / "nginx.conf"
HAPROXY_DEBIAN = DATA / "haproxy" / "debian.cfg"
HAPROXY_EDGE = DATA / "haproxy" / "edge.cfg"
HAPROXY_LEGACY = DATA / "haproxy" / "legacy.cfg"
NGINX_CONFIGS = [NGINX_DEBIAN, NGINX_APP, NGINX_FRONT]
HAPROXY_CONFIGS = [HAPROXY_DEBIAN, HAPROXY_EDGE, HAPROXY_LEGACY]


def at(path: Path, text: str) -> SourceRef:
    """Where ``text`` first appears in ``path`` (so the tests survive comment edits)."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return SourceRef(str(path), number)
    raise AssertionError(f"{text!r} not in {path}")


def secs(proxy: HaproxyProxy, name: str) -> float | None:
    setting = proxy.timeout(name)
    return None if setting is None else setting.seconds


def only(report: TimeoutReport, kind: str, where: SourceRef | None = None) -> list[Finding]:
    found = [f for f in report.findings if f.kind == kind and (where is None or f.where == where)]
    assert found, f"no {kind} at {where}; findings: {[(f.kind, str(f.where)) for f in report.findings]}"
    return found


# --------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30), ("500ms", 0.5), ("1m30s", 90), ("1m 40s", 100), ("2h", 7200), ("1d", 86400), ("1w", 604800)],
)
def test_nginx_durations(text: str, seconds: float) -> None:
    assert parse_nginx_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "1.5s", "-1"])
def test_nginx_durations_reject_garbage(text: str) -> None:
    assert parse_nginx_duration(text) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5000", 5), ("50ms", 0.05), ("30s", 30), ("2m", 120), ("1h", 3600), ("1d", 86400), ("1500us", 0.0015)],
)
def test_haproxy_durations_bare_numbers_are_milliseconds(text: str, seconds: float) -> None:
    assert parse_haproxy_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("1m30s", 90), ("1500ms", 1.5)])
def test_app_timeout_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert format_seconds(seconds) in {"1m30s", "1.5s"}


@pytest.mark.parametrize("text", ["", "soon", "9x", "1m30"])
def test_app_timeout_rejects_non_durations(text: str) -> None:
    if text == "1m30":  # a bare trailing number is seconds: 1m + 30s
        assert parse_duration(text) == 90
        return
    with pytest.raises(UserError, match="not a duration"):
        parse_duration(text)


# --------------------------------------------------------------------- nginx parser


def test_nginx_tokenizer_handles_comments_quotes_variables_and_escapes() -> None:
    config = parse_nginx_text(
        """
        http {  # comment with { and ;
            log_format main '$remote_addr "$request" ${status}';
            server {
                server_name "a.test" b.test;
                location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; fastcgi_read_timeout 1m; }
                location /x { return 200 "a;b{c}"; }
                location /y { proxy_pass http://10.1.1.1:8080/y/; }
            }
        }
        """
    )
    assert config.problems == ()
    http = config.directives[0]
    assert http.find("log_format")[0].args == ("main", '$remote_addr "$request" ${status}')
    server = config.servers[0]
    assert server.names == ("a.test", "b.test")
    php, plain, proxied = config.locations
    assert php.path == "~ \\.php$"
    assert php.module == "fastcgi"
    assert php.target == ("127.0.0.1", 9000)
    assert php.timeout("read").seconds == 60
    assert not plain.passes
    assert proxied.target == ("10.1.1.1", 8080)


def test_nginx_syntax_problems_are_reported_not_raised() -> None:
    config = parse_nginx_text(
        "http {\n  proxy_read_timeout forever;\n  server {\n    location / { proxy_pass http://a }\n",
        file="broken.conf",
    )
    messages = [message for _, message in config.problems]
    assert any("invalid time" in message for message in messages)
    assert any("not terminated" in message for message in messages)
    assert any("not closed" in message for message in messages)
    report = analyse_timeouts(config)
    assert only(report, "config-problem", SourceRef("broken.conf", 2))


def test_nginx_include_glob_missing_and_loop(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text("server { listen 8002; }\n")
    (tmp_path / "conf.d" / "a.conf").write_text("server { listen 8001; }\n")
    (tmp_path / "loop.conf").write_text("include loop.conf;\n")
    main = tmp_path / "nginx.conf"
    main.write_text(
        "http {\n include conf.d/*.conf;\n include nothing/*.conf;\n"
        " include missing.conf;\n include loop.conf;\n}\n"
    )
    config = load_nginx_config(main)
    assert [server.listen_ports for server in config.servers] == [(8001,), (8002,)]
    problems = {(str(where), message.split(":")[0]) for where, message in config.problems}
    assert (f"{main}:4", "included file not found") in problems
    assert (f"{tmp_path / 'loop.conf'}:1", "include loop") in problems


def test_nginx_unreadable_main_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such nginx configuration file"):
        load_nginx_config(tmp_path / "absent.conf")


def test_debian_default_nginx_config_is_read_whole_and_clean() -> None:
    config = load_nginx_config(NGINX_DEBIAN)
    assert config.problems == ()
    names = {Path(file).name for file in config.files}
    assert {"nginx.conf", "mime.types", "default", "php-app", "fastcgi-php.conf", "fastcgi.conf"} <= names
    assert [server.label for server in config.servers] == ["_", "php.example.test"]
    assert config.listen_ports == {80, 8081}
    (php,) = config.proxied_locations
    assert php.module == "fastcgi"
    assert php.pass_target == "unix:/run/php/php8.2-fpm.sock"
    assert php.timeout("read").is_default
    assert analyse_timeouts(config, app_timeout=30).findings == ()


def test_nginx_inheritance_http_server_location_and_nested() -> None:
    config = load_nginx_config(NGINX_APP)
    assert config.problems == ()
    by_path = {location.path: location for location in config.locations}
    root = by_path["/"]
    assert root.upstream == "app_backend"
    assert root.timeout("read").seconds == 30
    assert root.timeout("read").where == at(NGINX_APP, "proxy_read_timeout 30s")
    assert root.timeout("connect").where == at(NGINX_APP, "proxy_connect_timeout 5s")
    assert root.timeout("send").is_default and root.timeout("send").seconds == 60
    assert root.settings["keepalive_timeout"].seconds == 65
    assert root.settings["client_body_timeout"].seconds == 30
    app_conf = NGINX_APP.parent / "conf.d" / "app.conf"
    assert by_path["/reports/"].timeout("read").where == at(app_conf, "proxy_read_timeout 120s")
    assert by_path["/admin/"].timeout("read").seconds == 30
    assert by_path["/admin/export"].timeout("read").seconds == 100
    assert by_path["~ \\.php$"].module == "fastcgi"
    assert by_path["~ \\.php$"].timeout("read").seconds == 300
    assert not by_path["/static/"].passes
    upstream = config.upstreams["app_backend"]
    assert [server.max_fails for server in upstream.servers] == [3, 0, 1]
    assert [server.fail_timeout.seconds for server in upstream.servers] == [5, 10, 10]
    assert upstream.keepalive_connections == 32
    assert upstream.servers[2].backup


# --------------------------------------------------------------------- HAProxy parser


def test_haproxy_debian_default_config() -> None:
    config = load_haproxy_config(HAPROXY_DEBIAN)
    assert config.problems == ()
    (defaults,) = config.proxies
    assert defaults.kind == "defaults"
    assert defaults.mode == "http"
    assert secs(defaults, "connect") == 5
    assert secs(defaults, "client") == 50
    assert analyse_timeouts(haproxy=config).findings == ()


def test_haproxy_inheritance_named_defaults_and_reset() -> None:
    config = load_haproxy_config(HAPROXY_LEGACY)
    assert config.problems == ()
    mysql = config.proxy("listen", "mysql")
    assert mysql is not None
    assert secs(mysql, "connect") == 5
    assert mysql.timeout("client") is None and mysql.timeout("server") is None
    assert [(bind.host, bind.port) for bind in mysql.binds] == [("127.0.0.1", 13306)]
    redis = config.proxy("frontend", "fe_redis")
    assert redis is not None
    assert secs(redis, "client") == 1800
    assert secs(redis, "connect") == 3
    assert config.backends_of(redis)[0].name == "be_redis"
    edge = load_haproxy_config(HAPROXY_EDGE)
    api = edge.proxy("backend", "be_api")
    assert api is not None and api.retries == 2 and api.redispatch
    server = api.timeout("server")
    assert server is not None and server.where == at(HAPROXY_EDGE, "timeout server 2m")
    frontend = edge.proxy("frontend", "fe_http")
    assert frontend is not None
    assert frontend.backends == ["be_nginx", "be_api"]
    assert edge.bind_ports == {8080, 8443, 8404}


def test_haproxy_problems_and_legacy_keywords() -> None:
    config = parse_haproxy_text(
        "stray line\ndefaults\n  contimeout 4000\n  timeout server 3x\n  timeout bogus 1s\n"
        "backend b\n  server s 10.0.0.1:80\n",
        file="h.cfg",
    )
    messages = {str(where): message for where, message in config.problems}
    assert "outside any section" in messages["h.cfg:1"]
    assert "invalid time" in messages["h.cfg:4"]
    assert "unknown timeout" in messages["h.cfg:5"]
    backend = config.proxy("backend", "b")
    assert backend is not None and secs(backend, "connect") == 4
    report = analyse_timeouts(haproxy=config)
    assert (
        only(report, "missing-timeout", SourceRef("h.cfg", 6))[0].message
        == "no timeout server (here or in its defaults section)"
    )


# --------------------------------------------------------------------- findings


@pytest.fixture(scope="module")
def app_behind_haproxy() -> TimeoutReport:
    return analyse_timeouts(
        load_nginx_config(NGINX_APP), load_haproxy_config(HAPROXY_EDGE), app_timeout=90, app_keepalive=5
    )


def test_proxy_timeout_below_app_timeout(app_behind_haproxy: TimeoutReport) -> None:
    (nginx,) = only(app_behind_haproxy, "proxy-timeout-below-app", at(NGINX_APP, "proxy_read_timeout 30s"))
    assert nginx.severity is Severity.CRITICAL
    assert nginx.subject == "app.example.test location /, app.example.test location /admin/"
    assert "504" in nginx.explanation
    (haproxy,) = only(app_behind_haproxy, "proxy-timeout-below-app", at(HAPROXY_EDGE, "timeout server  45s"))
    assert haproxy.subject == "backend be_nginx"
    assert haproxy.message == "timeout server 45s is shorter than the application's 1m30s timeout"


def test_chain_haproxy_in_front_gives_up_before_nginx(app_behind_haproxy: TimeoutReport) -> None:
    assert app_behind_haproxy.chain == "haproxy → nginx"
    chained = only(app_behind_haproxy, "chain-timeout-order", at(HAPROXY_EDGE, "timeout server  45s"))
    subjects = {finding.subject for finding in chained}
    assert "backend be_nginx → nginx app.example.test location /reports/" in subjects
    assert all("assuming" not in finding.message for finding in chained)
    assert not any("be_api" in subject for subject in subjects)  # be_api points elsewhere


def test_chain_nginx_in_front_gives_up_before_haproxy() -> None:
    report = analyse_timeouts(load_nginx_config(NGINX_FRONT), load_haproxy_config(HAPROXY_EDGE))
    assert report.chain == "nginx → haproxy"
    chained = only(report, "chain-timeout-order", at(NGINX_FRONT, "proxy_read_timeout 30s"))
    assert {finding.subject for finding in chained} == {
        "nginx www.example.test location / → backend be_nginx",
        "nginx www.example.test location / → backend be_api",
    }


def test_chain_is_assumed_when_no_address_matches() -> None:
    nginx = parse_nginx_text(
        "http { server { listen 9; location / { proxy_pass http://10.9.9.9:1; } } }", "n.conf"
    )
    haproxy = parse_haproxy_text(
        "defaults\n timeout connect 1s\n timeout client 5s\n timeout server 5s\n"
        "backend b\n server s 10.0.0.1:7\n",
        "h.cfg",
    )
    report = analyse_timeouts(nginx, haproxy)
    assert report.chain == "haproxy → nginx (assumed)"
    (finding,) = only(report, "chain-timeout-order", SourceRef("h.cfg", 4))
    assert "assuming HAProxy sits in front of nginx" in finding.message


def test_client_timeout_shorter_than_server() -> None:
    edge = analyse_timeouts(haproxy=load_haproxy_config(HAPROXY_EDGE))
    http_mode = only(edge, "client-timeout-below-server", at(HAPROXY_EDGE, "timeout client  30s"))
    assert {finding.subject for finding in http_mode} == {
        "frontend fe_http → backend be_nginx",
        "frontend fe_http → backend be_api",
    }
    assert all(finding.severity is Severity.INFO for finding in http_mode)
    legacy = analyse_timeouts(haproxy=load_haproxy_config(HAPROXY_LEGACY))
    (tcp_mode,) = only(legacy, "client-timeout-below-server", at(HAPROXY_LEGACY, "timeout client 30m"))
    assert tcp_mode.severity is Severity.WARNING
    assert "cD" in tcp_mode.explanation


def test_missing_haproxy_timeouts() -> None:
    report = analyse_timeouts(haproxy=load_haproxy_config(HAPROXY_LEGACY))
    (finding,) = only(report, "missing-timeout", at(HAPROXY_LEGACY, "listen mysql"))
    assert finding.message == "no timeout client, timeout server (here or in its defaults section)"
    assert "maxconn" in finding.explanation


def test_redispatch_without_retries(app_behind_haproxy: TimeoutReport) -> None:
    (finding,) = only(app_behind_haproxy, "redispatch-without-retries", at(HAPROXY_EDGE, "retries\t0"))
    assert finding.subject == "backend be_nginx"  # stats has no servers, be_api sets retries 2


def test_max_fails_zero(app_behind_haproxy: TimeoutReport) -> None:
    upstreams = NGINX_APP.parent / "conf.d" / "upstreams.conf"
    (finding,) = only(app_behind_haproxy, "max-fails-zero", at(upstreams, "max_fails=0"))
    assert finding.subject == "upstream app_backend server 10.0.0.12:8000"


def test_fail_timeout_shorter_than_read_timeout(app_behind_haproxy: TimeoutReport) -> None:
    upstreams = NGINX_APP.parent / "conf.d" / "upstreams.conf"
    (finding,) = only(app_behind_haproxy, "fail-timeout-below-read-timeout", at(upstreams, "fail_timeout=5s"))
    assert finding.severity is Severity.WARNING
    assert finding.message.startswith("fail_timeout=5s is shorter than proxy_read_timeout 120s")
    # nginx's own defaults (10.0.0.13, php_fpm) are not flagged.
    assert len(only(app_behind_haproxy, "fail-timeout-below-read-timeout")) == 1
    single = analyse_timeouts(
        parse_nginx_text(
            "upstream u { server 10.0.0.1:80 fail_timeout=5s; }\n"
            "server { location / { proxy_pass http://u; } }",
            "u.conf",
        )
    )
    (info,) = only(single, "fail-timeout-below-read-timeout", SourceRef("u.conf", 1))
    assert info.severity is Severity.INFO


def test_keepalive_race_with_application_and_with_haproxy(app_behind_haproxy: TimeoutReport) -> None:
    upstreams = NGINX_APP.parent / "conf.d" / "upstreams.conf"
    (app,) = only(app_behind_haproxy, "keepalive-race", at(upstreams, "keepalive_timeout 60s"))
    assert app.message.endswith("but the application closes them after 5s")
    front = analyse_timeouts(load_nginx_config(NGINX_FRONT), load_haproxy_config(HAPROXY_EDGE))
    (chained,) = only(front, "keepalive-race", at(NGINX_FRONT, "keepalive 16"))
    assert "HAProxy frontend fe_http closes them after timeout http-keep-alive 2s" in chained.message
    # Without keepalive connections nginx opens a fresh connection per request: no race.
    no_reuse = analyse_timeouts(
        parse_nginx_text(
            "upstream u { server 10.0.0.1:80; }\nserver { location / { proxy_pass http://u; } }"
        ),
        app_keepalive=5,
    )
    assert not [finding for finding in no_reuse.findings if finding.kind == "keepalive-race"]


def test_connect_timeout_above_nginx_cap(app_behind_haproxy: TimeoutReport) -> None:
    app_conf = NGINX_APP.parent / "conf.d" / "app.conf"
    (finding,) = only(app_behind_haproxy, "connect-timeout-capped", at(app_conf, "proxy_connect_timeout 90s"))
    assert finding.severity is Severity.INFO


def test_report_json_and_summary(app_behind_haproxy: TimeoutReport) -> None:
    data = json.loads(json.dumps(app_behind_haproxy.to_dict()))
    assert data["chain"] == "haproxy → nginx"
    assert data["app_timeout_seconds"] == 90
    kinds = {finding["kind"] for finding in data["findings"]}
    assert kinds >= {"proxy-timeout-below-app", "chain-timeout-order", "max-fails-zero", "keepalive-race"}
    assert all(re.search(r":\d+$", finding["where"]) for finding in data["findings"])
    assert data["findings"][0]["severity"] == "critical"
    locations = {location["location"]: location for location in data["nginx"]["locations"]}
    assert locations["/"]["settings"]["proxy_read_timeout"]["seconds"] == 30
    assert data["haproxy"]["proxies"][0]["name"] == "fe_http"
    summary = app_behind_haproxy.summary()
    assert summary.splitlines()[0].startswith(f"{len(app_behind_haproxy.findings)} finding(s): 2 critical")


def test_nothing_to_analyse_is_a_user_error() -> None:
    with pytest.raises(UserError):
        analyse_timeouts()


# --------------------------------------------------------------------- the real binaries


def _binary(name: str) -> str | None:
    """Debian installs both in /usr/sbin, which is not on an ordinary user's PATH."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


NGINX = _binary("nginx")
HAPROXY = _binary("haproxy")


def _nginx_test_copy(config: Path, tmp_path: Path) -> Path:
    """Copy the data tree so nginx -t runs unprivileged: high ports, temp paths under the prefix."""
    conf_root = tmp_path / "conf"
    shutil.copytree(DATA / "nginx", conf_root)
    for file in conf_root.rglob("*"):
        if not file.is_file() or file.name == "mime.types":
            continue
        text = file.read_text()
        # bind() needs root below 1024; nginx -t tolerates ports in use, not EACCES.
        text = re.sub(
            r"(\blisten\s+(?:\[[^\]]*\]:|[\w.*-]+:)?)(\d+)\b", lambda m: f"{m[1]}{20000 + int(m[2])}", text
        )
        if file.name == "nginx.conf":
            temp = " ".join(f"{kind}_temp_path tmp/{kind};" for kind in ("proxy", "fastcgi", "uwsgi", "scgi"))
            text = text.replace("\nhttp {", f"\nhttp {{\n\tclient_body_temp_path tmp/body; {temp}", 1)
        file.write_text(text)
    (tmp_path / "logs").mkdir()
    (tmp_path / "tmp").mkdir()
    return conf_root / config.relative_to(DATA / "nginx")


@pytest.mark.skipif(NGINX is None, reason="nginx not installed (Debian package: nginx)")
@pytest.mark.parametrize("config", NGINX_CONFIGS, ids=lambda path: path.parent.name)
def test_nginx_accepts_the_test_configs(config: Path, tmp_path: Path) -> None:
    copy = _nginx_test_copy(config, tmp_path)
    assert NGINX is not None
    result = subprocess.run(
        [NGINX, "-t", "-q", "-e", "stderr", "-p", str(tmp_path), "-c", str(copy)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # The patched copy parses to the same model as the original (ports aside).
    original, patched = load_nginx_config(config), load_nginx_config(copy)
    assert [loc.path for loc in original.locations] == [loc.path for loc in patched.locations]


@pytest.mark.skipif(HAPROXY is None, reason="haproxy not installed (Debian package: haproxy)")
@pytest.mark.parametrize("config", HAPROXY_CONFIGS, ids=lambda path: path.stem)
def test_haproxy_accepts_the_test_configs(config: Path) -> None:
    if config == HAPROXY_DEBIAN and not Path("/etc/haproxy/errors/400.http").exists():
        pytest.skip("Debian's haproxy.cfg needs the package's /etc/haproxy/errors files")
    assert HAPROXY is not None
    result = subprocess.run(
        [HAPROXY, "-c", "-q", "-f", str(config)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------- command line


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no stray firebell.toml
    monkeypatch.delenv("FIREBELL_CONFIG", raising=False)
    return CliRunner()


def test_cli_timeouts_json(runner: CliRunner) -> None:
    result = runner.invoke(
        cli,
        [
            "diag",
            "timeouts",
            "--nginx",
            str(NGINX_APP),
            "--haproxy",
            str(HAPROXY_EDGE),
            "--app-timeout",
            "90s",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["app_timeout_seconds"] == 90
    assert any(finding["kind"] == "proxy-timeout-below-app" for finding in data["findings"])


def test_cli_timeouts_tables(runner: CliRunner) -> None:
    result = runner.invoke(
        cli, ["diag", "timeouts", "--haproxy", str(HAPROXY_LEGACY)], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert "missing" not in result.stderr
    assert "listen mysql" in result.stdout
    assert "no timeout client, timeout server" in result.stdout


def test_cli_timeouts_app_timeout_from_config(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "firebell.toml").write_text(
        f'[diagnostics]\napp_timeout = "90s"\nnginx_config = "{NGINX_APP}"\n'
    )
    result = runner.invoke(cli, ["diag", "timeouts", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["app_timeout_seconds"] == 90


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --nginx FILE, --haproxy FILE or both"),
        (["--nginx", "/nonexistent/nginx.conf"], "no such nginx configuration file"),
        (["--haproxy", "/nonexistent/haproxy.cfg"], "no such HAProxy configuration file"),
        (["--haproxy", str(HAPROXY_EDGE), "--app-timeout", "soon"], "not a duration"),
    ],
)
def test_cli_timeouts_bad_input_exits_2_with_one_line(
    runner: CliRunner, args: list[str], message: str
) -> None:
    result = runner.invoke(cli, ["diag", "timeouts", *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
