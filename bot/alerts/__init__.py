"""Alert sources: signature checks and parsers that turn vendor webhooks into ``AlertEvent`` values."""
