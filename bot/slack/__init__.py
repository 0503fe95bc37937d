"""The Slack adapter: ``ChatChannel`` over slack_sdk's ``AsyncWebClient``."""
