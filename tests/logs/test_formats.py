"""Format strings → layouts: presets, nginx and Apache custom formats, clear errors."""

from __future__ import annotations

import pytest

from bot.errors import UserError
from bot.logs.formats import PRESETS, compile_format, detect_format
from bot.logs.vector import plan_for
from tests.logs import logdata


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_compile_with_a_columnar_plan(name: str) -> None:
    layout = compile_format(name)
    assert layout.name == name
    assert {"time", "status", "client"} <= set(layout.columns)
    assert plan_for(layout) is not None


def test_combined_rt_has_latency_in_seconds() -> None:
    layout = compile_format("combined_rt")
    assert layout.latency_field == "$request_time"
    assert layout.latency_scale == 1.0


def test_nginx_custom_format_captures_upstream_and_request_time() -> None:
    layout = compile_format(logdata.NGINX_CUSTOM)
    assert layout.dialect == "nginx"
    assert layout.latency_field == "$request_time"  # preferred over $upstream_response_time
    assert {"upstream", "host", "request"} <= set(layout.columns)
    line = logdata.nginx_custom(next(r for r in logdata.requests() if r.status == 502)).encode()
    match = layout.strict.match(line)
    assert match is not None
    assert match.group(layout.roles["upstream"] + 1) == b"10.0.1.7:8080, 10.0.9.9:8080"


def test_apache_custom_format_with_microseconds() -> None:
    layout = compile_format(logdata.APACHE_CUSTOM)
    assert layout.dialect == "apache"
    assert layout.latency_field == "%D"
    assert layout.latency_scale == pytest.approx(1e-6)


def test_whole_config_directives_are_accepted() -> None:
    nginx = compile_format(
        "log_format timed '$remote_addr [$time_local] \"$request\" '\n  '$status $request_time';"
    )
    assert nginx.text == '$remote_addr [$time_local] "$request" $status $request_time'
    apache = compile_format('LogFormat "%h %l %u %t \\"%r\\" %>s %b %{ms}T" timed')
    assert apache.text == '%h %l %u %t "%r" %>s %b %{ms}T'
    assert apache.latency_scale == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ('$remote_addr [$time_local] "$request" $status $bogus_var', "$bogus_var"),
        ('%h %t "%r" %>s %Z', "%Z"),
        ('%h %t "%r" %>s %{fortnight}T', "fortnight"),
        ('$remote_addr "$request" $status', "time field"),
        ("$remote_addr [$time_local]", "status field"),
        ("just words", "preset"),
    ],
)
def test_bad_format_strings_name_the_problem(spec: str, named: str) -> None:
    with pytest.raises(UserError, match=named.replace("$", r"\$").replace("{", r"\{")):
        compile_format(spec)


def test_detection_prefers_the_most_specific_preset() -> None:
    requests = list(logdata.requests(minutes=2))
    for render, name in (
        (logdata.combined_rt, "combined_rt"),
        (logdata.combined, "combined"),
        (logdata.common, "common"),
        (logdata.vhost_combined, "vhost_combined"),
    ):
        sample = "\n".join(render(r) for r in requests).encode()
        layout = detect_format(sample)
        assert layout is not None and layout.name == name
    assert detect_format(b"this is not an access log\n") is None
