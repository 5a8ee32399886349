"""The connector layer: the platform catalog (declarative data), one paging engine that
serves every platform, and OAuth 2 helpers. Used by the integrations, sources and jobs
services."""
