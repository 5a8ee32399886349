"""Entry point of ``listbackup-account-{stage}-api``: the account service's routes.

The operations live beside this module by topic (``tree``: the account, usage, the
hierarchy, sub-accounts and switching; ``members``; ``invitations``); this module binds
them to the route table.
"""

from __future__ import annotations

from handlers.account import invitations, members, tree
from handlers.account.routes import ROUTES
from handlers.shared.http import api_handler
from handlers.shared.log import get_logger

logger = get_logger("account")

OPERATIONS = {
    "get_account": tree.get_account_op,
    "update_account": tree.update_account,
    "get_usage": tree.get_usage,
    "list_accounts": tree.list_accounts,
    "get_hierarchy": tree.get_hierarchy,
    "create_sub_account": tree.create_sub_account,
    "switch_account": tree.switch_account,
    "list_members": members.list_members,
    "update_member": members.update_member,
    "remove_member": members.remove_member,
    "list_invitations": invitations.list_invitations,
    "create_invitation": invitations.create_invitation,
    "revoke_invitation": invitations.revoke_invitation,
    "accept_invitation": invitations.accept_invitation,
}

handler = logger.inject_lambda_context(api_handler(ROUTES, OPERATIONS, logger))
