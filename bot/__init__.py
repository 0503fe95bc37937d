"""firebell core: domain values, services, engines, stores and vendor adapters.

Nothing in this package imports ``handlers``, ``slack_bolt`` or a web framework.
"""
