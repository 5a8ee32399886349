"""The auth service's part of the route table (DESIGN.md section 4)."""

from handlers.shared.routing import PUBLIC, ROLES, Route

EMAIL = {"type": "string", "format": "email", "maxLength": 254}
# Long enough for any pass phrase the policy accepts (it refuses over 128 with its own
# message), short enough that nobody makes us hash a megabyte.
PASSWORD = {"type": "string", "minLength": 1, "maxLength": 1024}
NAME = {"type": "string", "minLength": 1, "maxLength": 100}
COMPANY = {"type": "string", "maxLength": 200, "nullable": True}
ONE_TIME_TOKEN = {"type": "string", "minLength": 1, "maxLength": 512}


def _body(properties: dict, required: tuple[str, ...] = (), **extra) -> dict:
    schema = {"type": "object", "properties": properties, "additionalProperties": False, **extra}
    if required:
        schema["required"] = list(required)
    return schema


ROUTES = (
    Route("POST", "/auth/register", "register", PUBLIC,
          summary="Create a user, their account (free plan) and owner membership; e-mails a "
                  "verification link; answers a token pair",
          body=_body({"email": EMAIL, "password": PASSWORD, "name": NAME, "company": COMPANY},
                     ("email", "password", "name")),
          status=201),
    Route("POST", "/auth/login", "login", PUBLIC,
          summary="A token pair for an e-mail and password; 429 after 5 failures in 15 minutes",
          body=_body({"email": EMAIL, "password": PASSWORD}, ("email", "password"))),
    Route("POST", "/auth/refresh", "refresh", PUBLIC,
          summary="Rotate a refresh token into a new pair; a reused one revokes every session",
          body=_body({"refreshToken": {"type": "string", "minLength": 1, "maxLength": 4096}},
                     ("refreshToken",))),
    Route("POST", "/auth/logout", "logout", "viewer",
          summary="Revoke every token of the caller"),
    Route("POST", "/auth/verify", "verify", PUBLIC,
          summary="Confirm the e-mail address with the token from the verification e-mail",
          body=_body({"token": ONE_TIME_TOKEN}, ("token",))),
    Route("POST", "/auth/forgot-password", "forgot_password", PUBLIC,
          summary="E-mail a password reset link (the same answer whether or not the address "
                  "has an account)",
          body=_body({"email": EMAIL}, ("email",))),
    Route("POST", "/auth/reset-password", "reset_password", PUBLIC,
          summary="Set a new password with the token from the reset e-mail; ends every session",
          body=_body({"token": ONE_TIME_TOKEN, "password": PASSWORD}, ("token", "password"))),
    Route("GET", "/auth/profile", "get_profile", "viewer",
          summary="The caller's profile"),
    Route("PUT", "/auth/profile", "update_profile", "viewer",
          summary="Change the caller's name, company or preferences",
          body=_body({"name": NAME, "company": COMPANY,
                      "preferences": {"type": "object", "maxProperties": 50}},
                     minProperties=1)),
    Route("PUT", "/account/password", "change_password", "viewer",
          summary="Change the password (the current one is required); ends every other "
                  "session and answers a fresh token pair",
          body=_body({"currentPassword": PASSWORD, "newPassword": PASSWORD},
                     ("currentPassword", "newPassword"))),
    Route("GET", "/api-keys", "list_api_keys", "owner",
          summary="The account's API keys (never the key or its hash)"),
    Route("POST", "/api-keys", "create_api_key", "owner",
          summary="Create an API key for the account; the key is shown only in this answer",
          body=_body({"name": NAME, "role": {"type": "string", "enum": list(ROLES)}}, ("name",)),
          status=201),
    Route("DELETE", "/api-keys/{keyId}", "revoke_api_key", "owner",
          summary="Revoke one of the account's API keys"),
)
