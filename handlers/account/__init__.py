"""The account service: the caller's account and its usage, the account hierarchy
(sub-accounts, switching between accounts), members and invitations (DESIGN.md sections
4, 5 and 7).

Every ``{accountId}`` in a path must be the token's account or one of its descendants
(``handlers.shared.accounts.scoped_account``; 404 otherwise), and the caller's role in the
token's account applies to its descendants. Activity events are written in the account a
change concerns.
"""
