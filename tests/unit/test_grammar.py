import pytest

from bot.alerts.severity import Severity
from bot.commands.grammar import IncidentRef, help_text, parse
from bot.errors import UserError
from bot.incidents.model import Phase, Role


def test_empty_text_is_help() -> None:
    assert parse("").name == "help"
    assert parse("   ").name == "help"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status identified bad deploy", {"phase": Phase.IDENTIFIED, "text": "bad deploy"}),
        ("STATUS Monitoring", {"phase": Phase.MONITORING, "text": ""}),
        ("sev 2", {"severity": Severity.SEV2}),
        ("severity SEV1", {"name": "sev", "severity": Severity.SEV1}),
        ("ack", {"name": "ack"}),
        ("acknowledge", {"name": "ack"}),
        ("resolve rolled back", {"text": "rolled back"}),
        ("role commander <@U123|alice>", {"role": Role.COMMANDER, "user_id": "U123"}),
        ("role scribe <@W9>", {"role": Role.SCRIBE, "user_id": "W9"}),
        ("escalate", {"user_id": None, "service": None}),
        ("escalate <@U5>", {"user_id": "U5"}),
        ("escalate payments", {"service": "payments"}),
        ("update DB failover done", {"text": "DB failover done"}),
        ("timeline", {"add": False}),
        ("timeline add paged the DBA", {"add": True, "text": "paged the DBA"}),
        ("declare Checkout returns 503", {"text": "Checkout returns 503"}),
        ("summary", {"name": "summary"}),
        ("postmortem", {"name": "postmortem"}),
    ],
)
def test_subcommands(text: str, expected: dict[str, object]) -> None:
    command = parse(text)
    for key, value in expected.items():
        assert getattr(command, key) == value, key


def test_incident_references_from_other_channels() -> None:
    assert parse("summary <#C0123|inc-12-db-down>").incident == IncidentRef("C0123", "inc-12-db-down")
    assert parse("summary <#C0123>").incident == IncidentRef("C0123", None)
    command = parse("status identified #inc-12 the cache")
    assert command.incident == IncidentRef(None, "inc-12")
    assert command.text == "the cache"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("dance", "I don't know `dance`"),
        ("status", "Which status?"),
        ("status sleeping", "`sleeping` is not a status"),
        ("sev 5", "Usage: `/incident sev 1-4`"),
        ("sev", "Usage"),
        ("role boss <@U1>", "`boss` is not a role"),
        ("role commander alice", "@mention"),
        ("update", "needs some text"),
        ("timeline remove x", "write `add`"),
        ("ack now please", "takes no arguments"),
        ("escalate two words", "neither a service name nor an @mention"),
    ],
)
def test_wrong_commands_say_what_is_wrong_and_how_to_write_it(text: str, fragment: str) -> None:
    with pytest.raises(UserError) as caught:
        parse(text)
    assert fragment in str(caught.value)


def test_help_lists_every_subcommand_with_an_example() -> None:
    text = help_text()
    for name in (
        "declare",
        "status",
        "sev",
        "ack",
        "resolve",
        "reopen",
        "role",
        "roles",
        "escalate",
        "update",
        "timeline",
        "summary",
        "postmortem",
    ):
        assert f"/incident {name}" in text


@pytest.mark.parametrize(
    ("text", "urls", "count"),
    [
        ("diag http https://shop.example/", ("https://shop.example/",), 1),
        ("diag http <https://shop.example/|shop.example>", ("https://shop.example/",), 1),
        ("diag http <https://a.example/x?a=1&amp;b=2> --count 5", ("https://a.example/x?a=1&b=2",), 5),
        (
            "DIAG HTTP --count=3 <https://a.example/> b.example",
            ("https://a.example/", "b.example"),
            3,
        ),
    ],
)
def test_diag_http(text: str, urls: tuple[str, ...], count: int) -> None:
    command = parse(text)
    assert (command.name, command.diag_kind, command.urls, command.count) == ("diag", "http", urls, count)
    assert command.needs_incident


def test_diag_logs_takes_one_name() -> None:
    command = parse("diag logs web")
    assert (command.diag_kind, command.log_name, command.urls) == ("logs", "web", ())
    # Any single word parses; only configured names run (checked when run).
    assert parse("diag logs /etc/passwd").log_name == "/etc/passwd"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("diag", "Which diagnosis?"),
        ("diag dns example.com", "`dns` is not a diagnosis"),
        ("diag http", "Which URL?"),
        ("diag http --count 3", "Which URL?"),
        ("diag http https://x.example --count", "`--count` needs a number"),
        ("diag http https://x.example --count zero", "`zero` is not a count"),
        ("diag http https://x.example --count 0", "`0` is not a count"),
        ("diag http https://x.example --count 2 --count 3", "`--count` once"),
        ("diag http https://x.example --insecure", "`--insecure` is not an option"),
        ("diag http " + " ".join(f"https://{i}.example" for i in range(11)), "At most 10 URLs"),
        ("diag logs", "Name one configured log source"),
        ("diag logs web api", "is not one log source name"),
        ("diag timeouts /etc/nginx/nginx.conf", "`diag timeouts` takes no arguments"),
        ("diag resources", "Name one target"),
        ("diag resources web1 web2", "is not one target"),
        ("diag resources http://web1:9100/", "is not a `host` or `host:port`"),
        ('diag resources web1"}', "is not a `host` or `host:port`"),
        ("diag resources web1:port", "is not a `host` or `host:port`"),
        ("diag resources -web1", "is not a `host` or `host:port`"),
        ("diag monitors " + "x" * 101, "at most 100 characters"),
    ],
)
def test_diag_usage_errors(text: str, problem: str) -> None:
    with pytest.raises(UserError) as caught:
        parse(text)
    assert problem in str(caught.value)
    assert "Usage: `/incident diag http URL… [--count N] | diag logs NAME | diag timeouts" in str(
        caught.value
    )
    assert "diag resources TARGET | diag monitors [CHECK]`" in str(caught.value)


def test_diag_timeouts_resources_monitors() -> None:
    timeouts = parse("diag TIMEOUTS")
    assert (timeouts.name, timeouts.diag_kind) == ("diag", "timeouts")
    for target in ("web1", "web1:9100", "10.0.0.5:9100", "db-1.internal.example"):
        command = parse(f"diag resources {target}")
        assert (command.diag_kind, command.target) == ("resources", target)
    assert parse("diag monitors").check is None
    monitors = parse("diag monitors checkout api")
    assert (monitors.diag_kind, monitors.check) == ("monitors", "checkout api")
    assert parse("diag monitors <https://shop.example/|shop.example>").check == "https://shop.example/"


def test_help_lists_diag() -> None:
    assert "diag http URL…" in help_text()
    assert "diag resources TARGET" in help_text() and "diag monitors [CHECK]" in help_text()
