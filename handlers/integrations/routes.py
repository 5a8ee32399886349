"""The integrations service's part of the route table."""

from handlers.shared.routing import (BOOLEAN, INTEGER, PUBLIC, STRING, Route, nullable, obj, page)

RETURN_URL = {"type": "string", "format": "uri", "minLength": 8, "maxLength": 2048}

PLATFORM_SUMMARY = obj({
    "id": {"type": "string", "description": "the source type: keap, stripe, google-drive..."},
    "name": STRING, "categories": {"type": "array", "items": STRING},
    "auth": {"type": "string", "enum": ["api_key", "oauth2"]},
    "fileStore": BOOLEAN, "docsUrl": STRING}, title="PlatformSummary")
PLATFORM = obj({
    **PLATFORM_SUMMARY["properties"],
    "fields": {"type": "array", "items": obj({
        "name": STRING, "label": STRING,
        "secret": {"type": "boolean", "description": "a credential (stored encrypted, never "
                                                     "shown) rather than a setting"},
        "required": BOOLEAN, "pattern": nullable({"type": "string", "description": "full match"}),
        "help": STRING}, title="PlatformField")},
    "endpoints": {"type": "array", "items": obj({"name": STRING, "description": STRING},
                                                title="PlatformEndpoint")},
    "testEndpoint": STRING,
    "rateLimit": obj({"requestsPerSecond": {"type": "number", "minimum": 0}, "burst": INTEGER,
                      "notes": STRING}),
    "oauth": nullable(obj({"scopes": {"type": "array", "items": STRING}})),
}, title="Platform")

ROUTES = (
    Route("GET", "/integrations", "list_platforms", PUBLIC,
          summary="The platform catalog: every platform ListBackup can back up",
          response=page(PLATFORM_SUMMARY)),
    Route("GET", "/integrations/{type}", "get_platform", PUBLIC,
          summary="One platform: how to connect it and what is backed up", response=PLATFORM),
    Route("POST", "/integrations/{type}/oauth/initiate", "oauth_initiate", "manager",
          summary="Start connecting an OAuth platform: answers the authorize URL and state",
          body={"type": "object", "additionalProperties": False, "required": ["returnUrl"],
                "properties": {
                    "returnUrl": RETURN_URL,
                    "sourceId": {"type": "string", "minLength": 1, "maxLength": 64},
                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "settings": {"type": "object", "maxProperties": 20},
                }},
          response=obj({"authUrl": {"type": "string", "description": "send the user here"},
                        "state": {"type": "string", "minLength": 1}})),
    # The platform's redirect: parameters are the platform's (RFC 6749 4.1.2), so others are
    # ignored, and a missing or unknown state is the handler's 400 invalid_request.
    Route("GET", "/integrations/{type}/oauth/callback", "oauth_callback", PUBLIC,
          summary="The platform redirects here; validated by the stored state (400 "
                  "invalid_request when it is missing, unknown, used or expired); redirects "
                  "to the return URL with status=connected&sourceId=... or "
                  "status=error&error=<code>",
          query={"type": "object", "additionalProperties": True, "properties": {
              "state": {"type": "string", "description": "from the initiate answer"},
              "code": {"type": "string", "description": "the authorization code"},
              "error": {"type": "string", "description": "the platform's error code"},
              "error_description": STRING}},
          status=302),
)
