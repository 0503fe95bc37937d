"""Incidents: the state machine, naming, the Slack card and the side effects."""
