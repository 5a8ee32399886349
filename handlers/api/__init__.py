"""The api service's Lambda code: the authorizer of the HTTP API (``handlers.api.authorizer``)."""
