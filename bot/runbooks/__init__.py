"""Runbooks: reviewed, repeatable remediation steps run from Slack or the command line."""
