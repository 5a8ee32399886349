"""The integrations service: the platform catalog, and OAuth initiate and callback."""
