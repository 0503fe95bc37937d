"""An incident channel seen from Slack users: commands, clicks and what they are told."""

from __future__ import annotations

from typing import Any

from tests.conftest import SLACK_SIGNING_SECRET
from tests.fakes import FakeSlack
from tests.harness import FirebellServer, SlackClient


class Room:
    def __init__(self, slack: FakeSlack, firebell: FirebellServer, channel: str) -> None:
        self.slack = slack
        self.firebell = firebell
        self.channel = channel
        self.client = SlackClient(firebell.url, SLACK_SIGNING_SECRET, slack.new_response_url)

    def ask(self, text: str, user: str) -> dict[str, Any]:
        """``/incident <text>``: the answer, in the acknowledgement or later through response_url."""
        answer, url = self.client.command(text, user_id=user, channel_id=self.channel)
        assert answer.status_code == 200
        if answer.content and answer.json().get("text"):
            return dict(answer.json())
        self.slack.wait_for(lambda: len(self.slack.response_posts(url)) >= 1, message=text, timeout=30)
        return self.slack.response_posts(url)[0].body

    def command(self, text: str, user: str) -> None:
        """A command answered by a form or a file, not a message."""
        answer, _ = self.client.command(text, user_id=user, channel_id=self.channel)
        assert answer.status_code == 200

    def click(self, action: str, value: str, user: str) -> str | None:
        """Click, and the ephemeral answer the clicker gets, if any."""
        before = len(self.slack.response_posts())
        assert self.client.click(action, value, user_id=user, channel_id=self.channel).status_code == 200
        try:
            self.slack.wait_for(lambda: len(self.slack.response_posts()) > before, timeout=3)
        except AssertionError:
            return None
        return str(self.slack.response_posts()[-1].body.get("text"))
