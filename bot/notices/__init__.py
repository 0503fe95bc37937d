"""Customer notices: one draft, rendered per segment, delivered by email, push,
the status page and Slack through a database outbox."""
