"""The billing service's part of the route table."""

from handlers.shared.routing import PUBLIC, Route

ROUTES = (
    Route("GET", "/billing/plans", "list_plans", PUBLIC,
          summary="The plan catalog: price per month and limits of each plan"),
)
