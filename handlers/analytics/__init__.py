"""The analytics service: backup overview and daily timeseries of the caller's account,
read from counters kept incrementally (``handlers.shared.analytics``)."""
