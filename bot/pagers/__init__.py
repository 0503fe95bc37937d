"""Pager adapters: PagerDuty and Opsgenie behind the ``Pager`` protocol."""
