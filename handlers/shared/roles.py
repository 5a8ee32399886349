"""The roles a member has in an account, lowest first: each includes what the ones before it
may do. A module of its own so that what needs only the roles (the authorizer, tokens) does
not load the route table's machinery in its cold start."""

ROLES = ("viewer", "manager", "owner")
