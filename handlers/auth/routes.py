"""The auth service's part of the route table (DESIGN.md section 4)."""

from handlers.shared.routing import (BOOLEAN, NO_DATA, NULLABLE_STRING, NULLABLE_TIME, PAGE_QUERY,
                                     PUBLIC, ROLE, ROLES, STRING, TOKENS, Route, nullable, obj,
                                     page)

EMAIL = {"type": "string", "format": "email", "maxLength": 254}
# Long enough for any pass phrase the policy accepts (it refuses over 128 with its own
# message), short enough that nobody makes us hash a megabyte.
PASSWORD = {"type": "string", "minLength": 1, "maxLength": 1024}
NAME = {"type": "string", "minLength": 1, "maxLength": 100}
COMPANY = {"type": "string", "maxLength": 200, "nullable": True}
ONE_TIME_TOKEN = {"type": "string", "minLength": 1, "maxLength": 512}


# ------------------------------------------------------------------ answers

PROFILE = obj({"userId": STRING, "email": STRING, "name": STRING, "company": NULLABLE_STRING,
               "emailVerified": BOOLEAN,
               "preferences": {"type": "object", "additionalProperties": True,
                               "description": "what the client stored"},
               "createdAt": NULLABLE_TIME}, title="Profile")
API_KEY = obj({"keyId": STRING, "name": STRING,
               "prefix": {"type": "string", "description": "lbk_ and 8 characters"},
               "role": nullable(ROLE), "createdAt": NULLABLE_TIME, "lastUsedAt": NULLABLE_TIME,
               "revoked": BOOLEAN, "revokedAt": NULLABLE_TIME}, title="ApiKey")
NEW_API_KEY = obj({"keyId": STRING, "name": STRING, "role": ROLE,
                   "key": {"type": "string", "pattern": "^lbk_", "description": "shown only here"},
                   "prefix": STRING, "createdAt": NULLABLE_TIME}, title="NewApiKey")


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
                     ("email", "password", "name"),
                     example={"email": "ada@example.com", "password": "a long pass phrase 42",
                              "name": "Ada Lovelace", "company": "Analytical Engines"}),
          status=201, response=TOKENS),
    Route("POST", "/auth/login", "login", PUBLIC,
          summary="A token pair for an e-mail and password; 429 after 5 failures in 15 minutes",
          body=_body({"email": EMAIL, "password": PASSWORD}, ("email", "password")),
          response=TOKENS),
    Route("POST", "/auth/refresh", "refresh", PUBLIC,
          summary="Rotate a refresh token into a new pair; a reused one revokes every session",
          body=_body({"refreshToken": {"type": "string", "minLength": 1, "maxLength": 4096}},
                     ("refreshToken",)),
          response=TOKENS),
    Route("POST", "/auth/logout", "logout", "viewer",
          summary="Revoke every token of the caller", response=NO_DATA),
    Route("POST", "/auth/verify", "verify", PUBLIC,
          summary="Confirm the e-mail address with the token from the verification e-mail",
          body=_body({"token": ONE_TIME_TOKEN}, ("token",)),
          response=obj({"emailVerified": {"type": "boolean", "enum": [True]}})),
    Route("POST", "/auth/forgot-password", "forgot_password", PUBLIC,
          summary="E-mail a password reset link (the same answer whether or not the address "
                  "has an account)",
          body=_body({"email": EMAIL}, ("email",)),
          response=obj({"message": STRING})),
    Route("POST", "/auth/reset-password", "reset_password", PUBLIC,
          summary="Set a new password with the token from the reset e-mail; ends every session",
          body=_body({"token": ONE_TIME_TOKEN, "password": PASSWORD}, ("token", "password")),
          response=NO_DATA),
    Route("GET", "/auth/profile", "get_profile", "viewer",
          summary="The caller's profile", response=PROFILE),
    Route("PUT", "/auth/profile", "update_profile", "viewer",
          summary="Change the caller's name, company or preferences",
          body=_body({"name": NAME, "company": COMPANY,
                      "preferences": {"type": "object", "maxProperties": 50}},
                     minProperties=1),
          response=PROFILE),
    Route("PUT", "/account/password", "change_password", "viewer",
          summary="Change the password (the current one is required); ends every other "
                  "session and answers a fresh token pair",
          body=_body({"currentPassword": PASSWORD, "newPassword": PASSWORD},
                     ("currentPassword", "newPassword")),
          response=TOKENS),
    Route("GET", "/api-keys", "list_api_keys", "owner",
          summary="The account's API keys (never the key or its hash); paginated",
          query=PAGE_QUERY, response=page(API_KEY)),
    Route("POST", "/api-keys", "create_api_key", "owner",
          summary="Create an API key for the account; the key is shown only in this answer",
          body=_body({"name": NAME, "role": {"type": "string", "enum": list(ROLES)}}, ("name",)),
          status=201, response=NEW_API_KEY),
    Route("DELETE", "/api-keys/{keyId}", "revoke_api_key", "owner",
          summary="Revoke one of the account's API keys", response=NO_DATA),
)
