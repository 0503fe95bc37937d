"""Every way into firebell: web routes, Slack listeners, background loops and the CLI."""
