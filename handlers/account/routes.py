"""The account service's part of the route table."""

from handlers.shared.routing import (BOOLEAN, COUNT, NO_DATA, NULLABLE_STRING, NULLABLE_TIME,
                                     PAGE_QUERY, PLAN_LIMITS, ROLE, ROLES, STRING, TOKENS, Route,
                                     nullable, obj, page)

# at least one visible character; no control characters (names go into e-mail subjects)
_NAME = {"type": "string", "minLength": 1, "maxLength": 100,
         "pattern": "^[^\\u0000-\\u001f\\u007f]*[^\\s\\u0000-\\u001f\\u007f][^\\u0000-\\u001f\\u007f]*$"}
_ACCOUNT_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_ROLE = {"type": "string", "enum": list(ROLES)}

# ------------------------------------------------------------------ answers

ACCOUNT = obj({"accountId": STRING, "name": STRING,
               "plan": {"type": "string", "description": "the plan in force"},
               "parentAccountId": NULLABLE_STRING, "depth": COUNT,
               "createdAt": NULLABLE_TIME, "updatedAt": NULLABLE_TIME},
              title="Account")
MEMBER_ACCOUNT = obj({**ACCOUNT["properties"], "role": ROLE}, title="MemberAccount")
_FIGURE = obj({"used": {"type": "integer"}, "limit": PLAN_LIMITS["properties"]["sources"]},
              title="UsageFigure")
USAGE = obj({"accountId": STRING, "plan": STRING,
             "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
             "sources": _FIGURE, "jobs": _FIGURE, "storageBytes": _FIGURE,
             "subAccounts": _FIGURE, "runsThisMonth": _FIGURE}, title="Usage")
HOME_ACCOUNT = obj({**MEMBER_ACCOUNT["properties"], "planName": STRING, "limits": PLAN_LIMITS},
                   title="HomeAccount")
LISTED_ACCOUNT = obj({**MEMBER_ACCOUNT["properties"], "current": BOOLEAN}, title="ListedAccount")
MEMBER = obj({"userId": STRING, "email": NULLABLE_STRING, "name": STRING, "role": nullable(ROLE),
              "joinedAt": NULLABLE_TIME}, title="Member")
INVITATION = obj({"inviteId": STRING, "accountId": STRING, "email": NULLABLE_STRING,
                  "role": nullable(ROLE),
                  "status": {"type": "string",
                             "enum": ["pending", "expired", "accepted", "revoked"]},
                  "invitedBy": NULLABLE_STRING, "createdAt": NULLABLE_TIME,
                  "expiresAt": NULLABLE_TIME, "acceptedAt": NULLABLE_TIME,
                  "revokedAt": NULLABLE_TIME}, title="Invitation")

ROUTES = (
    Route("GET", "/account", "get_account", "viewer",
          summary="The token's account with the caller's role and the effective plan's limits",
          response=HOME_ACCOUNT),
    Route("PUT", "/account", "update_account", "manager",
          summary="Rename the token's account",
          body={"type": "object", "properties": {"name": _NAME},
                "additionalProperties": False, "minProperties": 1},
          response=HOME_ACCOUNT),
    Route("GET", "/account/usage", "get_usage", "viewer",
          summary="Sources, jobs, storage bytes, sub-accounts and runs this month, each "
                  "{used, limit} against the effective plan (limit null = unlimited)",
          response=USAGE),
    Route("GET", "/accounts", "list_accounts", "viewer",
          summary="Every account the caller belongs to, with their role in it; paginated",
          query=PAGE_QUERY, response=page(LISTED_ACCOUNT)),
    Route("GET", "/accounts/{accountId}/hierarchy", "get_hierarchy", "viewer",
          summary="The account and every account below it as a flat list in tree order "
                  "(depth first, parents before children; each item carries parentAccountId "
                  "and depth): {accountId, items, nextCursor}; paginated",
          query=PAGE_QUERY, response=page(ACCOUNT, accountId=STRING)),
    Route("POST", "/accounts/{accountId}/sub-accounts", "create_sub_account", "manager",
          summary="Create a sub-account (within the plan's sub-account limit and the depth "
                  "limit); the creator becomes its owner",
          body={"type": "object", "required": ["name"], "properties": {"name": _NAME},
                "additionalProperties": False},
          status=201, response=MEMBER_ACCOUNT),
    Route("POST", "/accounts/switch", "switch_account", "viewer",
          summary="A new token pair scoped to another account the caller belongs to",
          body={"type": "object", "required": ["accountId"],
                "properties": {"accountId": _ACCOUNT_ID}, "additionalProperties": False},
          response=TOKENS),
    Route("GET", "/accounts/{accountId}/members", "list_members", "viewer",
          summary="The account's members with name, e-mail and role; paginated",
          query=PAGE_QUERY, response=page(MEMBER)),
    Route("PUT", "/accounts/{accountId}/members/{userId}", "update_member", "manager",
          summary="Change a member's role (only an owner grants or removes the owner role; "
                  "the last owner cannot be demoted)",
          body={"type": "object", "required": ["role"], "properties": {"role": _ROLE},
                "additionalProperties": False},
          response=MEMBER),
    Route("DELETE", "/accounts/{accountId}/members/{userId}", "remove_member", "manager",
          summary="Remove a member (only an owner removes an owner; never the last owner)",
          response=NO_DATA),
    Route("GET", "/accounts/{accountId}/invitations", "list_invitations", "manager",
          summary="The account's invitations with their status (pending, expired, accepted, "
                  "revoked); paginated",
          query=PAGE_QUERY, response=page(INVITATION)),
    Route("POST", "/accounts/{accountId}/invitations", "create_invitation", "manager",
          summary="Invite an e-mail address with a role no higher than the inviter's; the "
                  "code is e-mailed, valid 7 days, single use",
          body={"type": "object", "required": ["email", "role"],
                "properties": {"email": {"type": "string", "format": "email", "maxLength": 254},
                               "role": _ROLE},
                "additionalProperties": False},
          status=201, response=INVITATION),
    Route("DELETE", "/accounts/{accountId}/invitations/{inviteId}", "revoke_invitation", "manager",
          summary="Revoke a pending invitation", response=NO_DATA),
    Route("POST", "/invitations/accept", "accept_invitation", "viewer",
          summary="Accept an invitation with its code; the caller's verified e-mail must be "
                  "the invited address. Answers the account with the new role",
          body={"type": "object", "required": ["inviteCode"],
                "properties": {"inviteCode": {"type": "string", "minLength": 1, "maxLength": 128}},
                "additionalProperties": False},
          response=MEMBER_ACCOUNT),
)
