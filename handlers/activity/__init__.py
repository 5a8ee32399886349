"""The activity service: the account's audit feed (filtered, newest first, paginated), one
event by id, and counts by type for the last day, week and month.

Events are written by every service through ``handlers.shared.activity``; this service
only reads them, always within the caller's account.
"""
