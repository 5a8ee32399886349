"""The integrations service's part of the route table."""

from handlers.shared.routing import PUBLIC, Route

RETURN_URL = {"type": "string", "format": "uri", "minLength": 8, "maxLength": 2048}

ROUTES = (
    Route("GET", "/integrations", "list_platforms", PUBLIC,
          summary="The platform catalog: every platform ListBackup can back up"),
    Route("GET", "/integrations/{type}", "get_platform", PUBLIC,
          summary="One platform: how to connect it and what is backed up"),
    Route("POST", "/integrations/{type}/oauth/initiate", "oauth_initiate", "manager",
          summary="Start connecting an OAuth platform: answers the authorize URL and state",
          body={"type": "object", "additionalProperties": False, "required": ["returnUrl"],
                "properties": {
                    "returnUrl": RETURN_URL,
                    "sourceId": {"type": "string", "minLength": 1, "maxLength": 64},
                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "settings": {"type": "object", "maxProperties": 20},
                }}),
    Route("GET", "/integrations/{type}/oauth/callback", "oauth_callback", PUBLIC,
          summary="The platform redirects here; validated by the stored state; redirects "
                  "to the return URL"),
)
