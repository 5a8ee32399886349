"""The platform catalog (DESIGN section 6): every platform ListBackup backs up, as data.

``CATALOG`` is the only list of platforms: ``GET /integrations``, the sources service's
validation, the OAuth flow and the paging engine all read it. Each entry follows the
platform's current documented API (checked November 2026); the notes beside an entry say
why an endpoint or a version was chosen where the platform offers several.

How the catalog fills :class:`~handlers.shared.connectors.model.Pagination` per style (the
engine in ``engine.py`` reads it this way):

- ``OFFSET``: ``limit_param``/``offset_param`` on every request (``count``/``offset`` at
  Mailchimp, ``limit``/``skip`` at GoHighLevel); ``total_path`` when the body carries a
  total, otherwise a short page ends the endpoint.
- ``PAGE``: ``page_param`` from ``first_page``, ``limit_param`` per page, ``total_path``.
- ``CURSOR_AFTER_ID``: ``cursor_param`` carries the last record's ``id_field``; the
  ``has_more_path`` flag (or a short page, when the platform has none) ends it.
- ``NEXT_URL``: ``cursor_path`` is the next page's URL in the body, followed verbatim;
  ``limit_param`` and ``extra`` go on the first request only.
- ``LINK_HEADER``: the ``Link: <...>; rel="next"`` URL, followed verbatim (Shopify refuses
  other parameters beside ``page_info``, and its next URL already carries ``limit``).
- ``CURSOR_TOKEN`` / ``MARKER``: ``cursor_path`` in the body is sent back as
  ``cursor_param``; no token (or a false ``has_more_path``) ends it.
- ``CURSOR_POST``: the first POST sends ``body`` + ``extra`` + ``limit_param``; each next
  page is a POST to ``continue_path`` with ``{cursor_param: cursor}`` alone (Dropbox
  refuses anything else there).
- A POST list endpoint (``method="POST"``) of another style takes its paging parameters
  in the JSON body.

Templates: ``{name}`` comes from the source's settings and credentials (OAuth sources carry
``access_token``), ``{parent.<field>}`` from the parent record of a child endpoint,
``{entry.<field>}`` from the file entry being downloaded. ``extra``, ``body`` and
``download_headers`` are templates too. Settings a user need not type are filled by
:func:`derive_settings` (Mailchimp's data centre from the API key, and so on).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from handlers.shared.connectors.model import (CURSOR_AFTER_ID, CURSOR_POST, CURSOR_TOKEN,
                                              LINK_HEADER, MARKER, NEXT_URL, OFFSET, PAGE,
                                              SINGLE, Endpoint, Field, OAuth, Pagination,
                                              Platform, RateLimit)

# ---------------------------------------------------------------------------------- Keap
# REST v1 throughout: v2 is Keap's default version but has no account-wide list of notes,
# transactions or affiliate commissions (v2 nests them under a contact or an affiliate),
# and v1 is still "current". v1 pages with limit/offset (at most 1000); its "count" is
# not documented as the total for every resource, so a short page ends an endpoint.

_KEAP_PAGE = Pagination(OFFSET, page_size=1000, limit_param="limit", offset_param="offset")


def _keap(name: str, path: str, records: str, description: str) -> Endpoint:
    return Endpoint(name, path, records, _KEAP_PAGE, description=description)


KEAP = Platform(
    id="keap",
    name="Keap",
    categories=("crm", "marketing-automation", "ecommerce"),
    auth="api_key",
    base_url="https://api.infusionsoft.com/crm/rest/v1",
    auth_header={"X-Keap-API-Key": "{api_key}"},
    fields=(
        Field("api_key", "Service Account Key or Personal Access Token", secret=True,
              pattern=r"[A-Za-z0-9._~+/=-]{16,512}",
              help="Keap → Settings → API Settings → Add Key. A Service Account Key (admin) "
                   "backs up every record; a Personal Access Token sees what its user sees."),
    ),
    endpoints=(
        _keap("contacts", "/contacts", "contacts", "Contacts"),
        _keap("companies", "/companies", "companies", "Companies"),
        _keap("opportunities", "/opportunities", "opportunities", "Opportunities (deals)"),
        _keap("orders", "/orders", "orders", "Orders"),
        _keap("products", "/products", "products", "Products"),
        _keap("tags", "/tags", "tags", "Tags"),
        _keap("tasks", "/tasks", "tasks", "Tasks"),
        _keap("notes", "/notes", "notes", "Notes"),
        _keap("emails", "/emails", "emails", "Sent email records"),
        _keap("transactions", "/transactions", "transactions", "Payment transactions"),
        _keap("subscriptions", "/subscriptions", "subscriptions", "Subscriptions"),
        _keap("users", "/users", "users", "Users of the Keap app"),
        _keap("files", "/files", "files", "File box entries (metadata)"),
        _keap("affiliates", "/affiliates", "affiliates", "Affiliates"),
        _keap("affiliate_commissions", "/affiliates/commissions", "commissions",
              "Affiliate commissions"),
        _keap("affiliate_programs", "/affiliates/programs", "programs",
              "Affiliate commission programs"),
    ),
    test_endpoint="tags",
    rate_limit=RateLimit(4.0, burst=10, notes="Personal Access Tokens and Service Account "
                         "Keys: 10 requests/second, 240/minute, 30,000/day"),
    docs_url="https://developer.infusionsoft.com/docs/rest/",
)

# ---------------------------------------------------------------------------------- Stripe

_STRIPE_PAGE = Pagination(CURSOR_AFTER_ID, page_size=100, limit_param="limit",
                          offset_param=None, cursor_param="starting_after",
                          has_more_path="has_more", id_field="id")


def _stripe(name: str, path: str, description: str, **extra: str) -> Endpoint:
    pagination = _STRIPE_PAGE if not extra else Pagination(
        CURSOR_AFTER_ID, page_size=100, limit_param="limit", offset_param=None,
        cursor_param="starting_after", has_more_path="has_more", id_field="id", extra=extra)
    return Endpoint(name, path, "data", pagination, description=description)


STRIPE = Platform(
    id="stripe",
    name="Stripe",
    categories=("payments", "billing"),
    auth="api_key",
    base_url="https://api.stripe.com/v1",
    auth_header={"Authorization": "Bearer {api_key}"},
    fields=(
        Field("api_key", "Secret or restricted API key", secret=True,
              pattern=r"(sk|rk)_(live|test)_[0-9A-Za-z]{1,247}",
              help="Dashboard → Developers → API keys. A restricted key (rk_live_…) with read "
                   "access to the listed resources is enough; never a publishable key (pk_…)."),
    ),
    endpoints=(
        _stripe("customers", "/customers", "Customers"),
        _stripe("charges", "/charges", "Charges"),
        _stripe("invoices", "/invoices", "Invoices"),
        # Without status=all the list leaves out canceled subscriptions.
        _stripe("subscriptions", "/subscriptions", "Subscriptions, canceled ones included",
                status="all"),
        _stripe("payouts", "/payouts", "Payouts"),
        _stripe("products", "/products", "Products"),
        _stripe("prices", "/prices", "Prices"),
        _stripe("payment_intents", "/payment_intents", "Payment intents"),
        _stripe("refunds", "/refunds", "Refunds"),
        _stripe("events", "/events", "Events (Stripe keeps the last 30 days)"),
    ),
    test_endpoint="customers",
    rate_limit=RateLimit(25.0, burst=25, notes="100 read requests/second in live mode, 25 in "
                         "test mode; 429 when exceeded"),
    docs_url="https://docs.stripe.com/api",
)

# ---------------------------------------------------------------------------------- Mailchimp

_MAILCHIMP_PAGE = Pagination(OFFSET, page_size=1000, limit_param="count", offset_param="offset",
                             total_path="total_items")


def _mailchimp(name: str, path: str, records: str, description: str,
               parent: str | None = None) -> Endpoint:
    return Endpoint(name, path, records, _MAILCHIMP_PAGE, parent=parent, description=description)


MAILCHIMP = Platform(
    id="mailchimp",
    name="Mailchimp",
    categories=("email-marketing",),
    auth="api_key",
    base_url="https://{dc}.api.mailchimp.com/3.0",
    auth_header={"Authorization": "basic:anystring:{api_key}"},
    fields=(
        Field("api_key", "API key", secret=True, pattern=r"[0-9a-f]{32}-us[0-9]{1,2}",
              help="Account → Extras → API keys. The key ends in your data centre (…-us21)."),
        Field("dc", "Data centre", secret=False, required=False, pattern=r"us[0-9]{1,2}",
              help="Taken from the end of the API key when left empty (us21)."),
    ),
    endpoints=(
        _mailchimp("lists", "/lists", "lists", "Audiences (lists)"),
        _mailchimp("list_members", "/lists/{parent.id}/members", "members",
                   "Members of every audience", parent="lists"),
        _mailchimp("segments", "/lists/{parent.id}/segments", "segments",
                   "Segments and tags of every audience", parent="lists"),
        _mailchimp("campaigns", "/campaigns", "campaigns", "Campaigns"),
        _mailchimp("reports", "/reports", "reports", "Campaign reports"),
        _mailchimp("automations", "/automations", "automations", "Classic automations"),
        _mailchimp("templates", "/templates", "templates", "Email templates"),
    ),
    test_endpoint="lists",
    rate_limit=RateLimit(5.0, burst=10, notes="At most 10 simultaneous connections per API "
                         "key; 429 beyond that"),
    docs_url="https://mailchimp.com/developer/marketing/api/",
)

# ---------------------------------------------------------------------------------- Zendesk
# Cursor pagination (page[size] up to 100, links.next while meta.has_more), which Zendesk
# recommends over offset pages and which every listed endpoint supports. Archived tickets
# are reachable only through the incremental export API (a later addition).

_ZENDESK_PAGE = Pagination(NEXT_URL, page_size=100, limit_param="page[size]", offset_param=None,
                           cursor_path="links.next", has_more_path="meta.has_more")


def _zendesk(name: str, path: str, records: str, description: str) -> Endpoint:
    return Endpoint(name, path, records, _ZENDESK_PAGE, description=description)


ZENDESK = Platform(
    id="zendesk",
    name="Zendesk",
    categories=("customer-support",),
    auth="api_key",
    base_url="https://{subdomain}.zendesk.com/api/v2",
    auth_header={"Authorization": "basic:{email}/token:{api_token}"},
    fields=(
        Field("subdomain", "Zendesk subdomain", secret=False,
              pattern=r"[a-z0-9][a-z0-9-]{0,62}",
              help="The part before .zendesk.com in your help centre address."),
        Field("email", "Agent email address", secret=False,
              pattern=r"[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}",
              help="The email of the admin or agent the API token belongs to."),
        Field("api_token", "API token", secret=True, pattern=r"[A-Za-z0-9]{20,64}",
              help="Admin Center → Apps and integrations → Zendesk API → Add API token."),
    ),
    endpoints=(
        _zendesk("tickets", "/tickets.json", "tickets", "Tickets (archived tickets excepted)"),
        _zendesk("users", "/users.json", "users", "Users: end users, agents and admins"),
        _zendesk("organizations", "/organizations.json", "organizations", "Organizations"),
        _zendesk("groups", "/groups.json", "groups", "Agent groups"),
        _zendesk("ticket_fields", "/ticket_fields.json", "ticket_fields", "Ticket fields"),
        _zendesk("satisfaction_ratings", "/satisfaction_ratings.json", "satisfaction_ratings",
                 "Customer satisfaction ratings"),
        _zendesk("macros", "/macros.json", "macros", "Macros"),
        _zendesk("views", "/views.json", "views", "Views"),
    ),
    test_endpoint="groups",
    rate_limit=RateLimit(3.0, burst=10, notes="200 (Team) to 2,500 (High Volume add-on) "
                         "requests/minute per account, by plan; 429 with Retry-After"),
    docs_url="https://developer.zendesk.com/api-reference/ticketing/introduction/",
)

# ---------------------------------------------------------------------------------- Shopify
# REST Admin API pinned to 2026-04 (supported until at least April 2027). Shopify made
# REST "legacy" in October 2024 but still serves it to custom apps; an Admin API access
# token of a custom app authenticates. Collections are two resources in REST (custom and
# smart); inventory levels are listed per location, transactions and fulfillments per order.

SHOPIFY_API_VERSION = "2026-04"
_SHOPIFY_PAGE = Pagination(LINK_HEADER, page_size=250, limit_param="limit", offset_param=None)


def _shopify(name: str, path: str, records: str, description: str, *,
             parent: str | None = None, pagination: Pagination = _SHOPIFY_PAGE) -> Endpoint:
    return Endpoint(name, path, records, pagination, parent=parent, description=description)


SHOPIFY = Platform(
    id="shopify",
    name="Shopify",
    categories=("ecommerce",),
    auth="api_key",
    base_url=f"https://{{shop}}.myshopify.com/admin/api/{SHOPIFY_API_VERSION}",
    auth_header={"X-Shopify-Access-Token": "{access_token}"},
    fields=(
        Field("shop", "Shop name", secret=False, pattern=r"[a-z0-9][a-z0-9-]{0,62}",
              help="The part before .myshopify.com (your-store)."),
        Field("access_token", "Admin API access token", secret=True,
              pattern=r"shp(at|ca|pa)_[0-9a-fA-F]{32}",
              help="Settings → Apps → Develop apps → your app → API credentials. Grant "
                   "read_orders, read_all_orders, read_customers, read_products, "
                   "read_inventory, read_locations and read_fulfillments."),
    ),
    endpoints=(
        _shopify("orders", "/orders.json", "orders", "Orders, open, closed and cancelled",
                 pagination=Pagination(LINK_HEADER, page_size=250, limit_param="limit",
                                       offset_param=None, extra={"status": "any"})),
        _shopify("customers", "/customers.json", "customers", "Customers"),
        _shopify("products", "/products.json", "products", "Products with variants and images"),
        _shopify("collections", "/custom_collections.json", "custom_collections",
                 "Custom (manual) collections"),
        _shopify("smart_collections", "/smart_collections.json", "smart_collections",
                 "Smart (rule-based) collections"),
        _shopify("locations", "/locations.json", "locations", "Locations",
                 pagination=Pagination(SINGLE)),
        _shopify("inventory_levels", "/locations/{parent.id}/inventory_levels.json",
                 "inventory_levels", "Inventory levels at every location", parent="locations"),
        _shopify("transactions", "/orders/{parent.id}/transactions.json", "transactions",
                 "Transactions of every order", parent="orders", pagination=Pagination(SINGLE)),
        _shopify("fulfillments", "/orders/{parent.id}/fulfillments.json", "fulfillments",
                 "Fulfillments of every order", parent="orders"),
    ),
    test_endpoint="locations",
    rate_limit=RateLimit(2.0, burst=40, notes="Leaky bucket of 40 requests per app and store, "
                         "leaking 2/second (Shopify Plus: 400 and 20/second)"),
    docs_url="https://shopify.dev/docs/api/admin-rest",
)

# ---------------------------------------------------------------------------------- GoHighLevel
# API v2 (services.leadconnectorhq.com) for one sub-account (location), with the Version
# header most of its endpoints document (2021-07-28; conversations and calendar events
# document 2021-04-15 and accept the header as sent). Contacts use GET /contacts/ and its
# meta.nextPageUrl: the newer POST /contacts/search pages by number only up to 10,000
# records, too few for a backup.

_GHL_LOCATION = {"locationId": "{locationId}"}


def _ghl_single(name: str, path: str, records: str, description: str, *,
                extra: Mapping[str, str] | None = None, parent: str | None = None) -> Endpoint:
    return Endpoint(name, path, records, Pagination(SINGLE, extra=dict(_GHL_LOCATION if extra is None else extra)),
                    parent=parent, description=description)


def _ghl_offset(name: str, path: str, records: str, description: str) -> Endpoint:
    return Endpoint(name, path, records,
                    Pagination(OFFSET, page_size=50, limit_param="limit", offset_param="skip",
                               total_path="total", extra=_GHL_LOCATION),
                    description=description)


def _ghl_pages(name: str, path: str, records: str, description: str,
               extra: Mapping[str, str]) -> Endpoint:
    return Endpoint(name, path, records,
                    Pagination(PAGE, page_size=100, limit_param="limit", offset_param=None,
                               page_param="page", first_page=1, total_path="meta.total",
                               extra=extra),
                    description=description)


GOHIGHLEVEL = Platform(
    id="gohighlevel",
    name="GoHighLevel",
    categories=("crm", "marketing-automation"),
    auth="oauth2",
    base_url="https://services.leadconnectorhq.com",
    auth_header={"Authorization": "Bearer {access_token}", "Version": "2021-07-28"},
    fields=(
        Field("locationId", "Sub-account (location) id", secret=False, required=False,
              pattern=r"[A-Za-z0-9]{8,64}",
              help="Taken from the authorization (the sub-account chosen when connecting) "
                   "when left empty."),
    ),
    oauth=OAuth(
        authorize_url="https://marketplace.gohighlevel.com/oauth/chooselocation",
        token_url="https://services.leadconnectorhq.com/oauth/token",
        scopes=("contacts.readonly", "opportunities.readonly", "calendars.readonly",
                "calendars/events.readonly", "campaigns.readonly", "forms.readonly",
                "surveys.readonly", "workflows.readonly", "conversations.readonly",
                "conversations/message.readonly", "users.readonly", "locations.readonly",
                "locations/customFields.readonly", "locations/tags.readonly"),
        token_auth="body",
    ),
    endpoints=(
        Endpoint("contacts", "/contacts/", "contacts",
                 Pagination(NEXT_URL, page_size=100, limit_param="limit", offset_param=None,
                            cursor_path="meta.nextPageUrl", extra=_GHL_LOCATION),
                 description="Contacts"),
        _ghl_pages("opportunities", "/opportunities/search", "opportunities",
                   "Opportunities in every pipeline and status",
                   {"location_id": "{locationId}", "status": "all"}),
        _ghl_single("pipelines", "/opportunities/pipelines", "pipelines",
                    "Pipelines and their stages"),
        _ghl_single("calendars", "/calendars/", "calendars", "Calendars"),
        # Events need a time window (milliseconds): all of them, 1970 to 2100.
        _ghl_single("appointments", "/calendars/events", "events",
                    "Appointments of every calendar", parent="calendars",
                    extra={"locationId": "{locationId}", "calendarId": "{parent.id}",
                           "startTime": "0", "endTime": "4102444800000"}),
        _ghl_single("campaigns", "/campaigns/", "campaigns", "Campaigns"),
        _ghl_offset("forms", "/forms/", "forms", "Forms"),
        _ghl_offset("surveys", "/surveys/", "surveys", "Surveys"),
        _ghl_single("workflows", "/workflows/", "workflows", "Workflows"),
        # startAfterDate takes the sort value (last message date, ms) of the last record.
        Endpoint("conversations", "/conversations/search", "conversations",
                 Pagination(CURSOR_AFTER_ID, page_size=100, limit_param="limit",
                            offset_param=None, cursor_param="startAfterDate",
                            id_field="lastMessageDate",
                            extra={**_GHL_LOCATION, "sortBy": "last_message_date",
                                   "sort": "desc"}),
                 description="Conversations"),
        _ghl_single("users", "/users/", "users", "Users of the sub-account"),
        _ghl_single("custom_fields", "/locations/{locationId}/customFields", "customFields",
                    "Custom fields", extra={}),
        _ghl_single("tags", "/locations/{locationId}/tags", "tags", "Tags", extra={}),
        _ghl_pages("form_submissions", "/forms/submissions", "submissions",
                   "Form submissions", _GHL_LOCATION),
        _ghl_pages("survey_submissions", "/surveys/submissions", "submissions",
                   "Survey submissions", _GHL_LOCATION),
    ),
    test_endpoint="tags",
    rate_limit=RateLimit(10.0, burst=100, notes="100 requests per 10 seconds and 200,000 per "
                         "day, per app and sub-account"),
    docs_url="https://marketplace.gohighlevel.com/docs/",
)

# ---------------------------------------------------------------------------------- ActiveCampaign
# API v3 at the account's own host; limit at most 100, meta.total is a string.

_AC_PAGE = Pagination(OFFSET, page_size=100, limit_param="limit", offset_param="offset",
                      total_path="meta.total")


def _ac(name: str, path: str, records: str, description: str) -> Endpoint:
    return Endpoint(name, path, records, _AC_PAGE, description=description)


ACTIVECAMPAIGN = Platform(
    id="activecampaign",
    name="ActiveCampaign",
    categories=("email-marketing", "crm"),
    auth="api_key",
    base_url="https://{account}.api-us1.com/api/3",
    auth_header={"Api-Token": "{api_key}"},
    fields=(
        Field("account", "Account name", secret=False, pattern=r"[a-z0-9][a-z0-9-]{0,62}",
              help="Settings → Developer → URL: the part before .api-us1.com "
                   "(https://youraccount.api-us1.com)."),
        Field("api_key", "API key", secret=True, pattern=r"[0-9a-fA-F]{64,80}",
              help="Settings → Developer → Key."),
    ),
    endpoints=(
        _ac("contacts", "/contacts", "contacts", "Contacts"),
        _ac("lists", "/lists", "lists", "Lists"),
        _ac("campaigns", "/campaigns", "campaigns", "Campaigns"),
        _ac("automations", "/automations", "automations", "Automations"),
        _ac("deals", "/deals", "deals", "Deals"),
        _ac("deal_stages", "/dealStages", "dealStages", "Deal stages"),
        _ac("pipelines", "/dealGroups", "dealGroups", "Deal pipelines"),
        _ac("accounts", "/accounts", "accounts", "Accounts (companies)"),
        _ac("tags", "/tags", "tags", "Tags"),
        _ac("custom_fields", "/fields", "fields", "Contact custom fields"),
        _ac("messages", "/messages", "messages", "Campaign messages"),
        _ac("forms", "/forms", "forms", "Forms"),
        _ac("users", "/users", "users", "Users"),
        _ac("groups", "/groups", "groups", "User groups (permissions)"),
        _ac("notes", "/notes", "notes", "Notes"),
        _ac("tasks", "/dealTasks", "dealTasks", "Tasks on contacts and deals"),
    ),
    test_endpoint="users",
    rate_limit=RateLimit(5.0, burst=5, notes="5 requests/second per account"),
    docs_url="https://developers.activecampaign.com/reference/overview",
)

# ---------------------------------------------------------------------------------- HubSpot
# CRM v3 object, owner, pipeline and property endpoints (supported with no end-of-support
# date; HubSpot's date-versioned paths, e.g. /crm/objects/2026-03, are their successors),
# marketing v3 forms and emails, lists v3 search, automation v4 flows (workflows), and the
# legacy engagements v1 listing, the one endpoint that lists every engagement type at once.
# Object lists return default properties unless properties= names them.

_HUBSPOT_CRM_PAGE = Pagination(CURSOR_TOKEN, page_size=100, limit_param="limit",
                               offset_param=None, cursor_param="after",
                               cursor_path="paging.next.after", extra={"archived": "false"})


def _hubspot_cursor(name: str, path: str, description: str, page_size: int = 100,
                    extra: Mapping[str, str] | None = None) -> Endpoint:
    return Endpoint(name, path, "results",
                    Pagination(CURSOR_TOKEN, page_size=page_size, limit_param="limit",
                               offset_param=None, cursor_param="after",
                               cursor_path="paging.next.after", extra=dict(extra or {})),
                    description=description)


def _hubspot_object(name: str, object_type: str, description: str) -> Endpoint:
    return Endpoint(name, f"/crm/v3/objects/{object_type}", "results", _HUBSPOT_CRM_PAGE,
                    description=description)


def _hubspot_single(name: str, path: str, description: str) -> Endpoint:
    return Endpoint(name, path, "results", Pagination(SINGLE), description=description)


HUBSPOT = Platform(
    id="hubspot",
    name="HubSpot",
    categories=("crm", "marketing-automation", "customer-support"),
    auth="oauth2",
    base_url="https://api.hubapi.com",
    auth_header={"Authorization": "Bearer {access_token}"},
    oauth=OAuth(
        authorize_url="https://app.hubspot.com/oauth/authorize",
        token_url="https://api.hubapi.com/oauth/v1/token",
        scopes=("oauth", "crm.objects.contacts.read", "crm.objects.companies.read",
                "crm.objects.deals.read", "tickets", "e-commerce", "crm.objects.quotes.read",
                "crm.objects.owners.read", "crm.lists.read", "crm.schemas.contacts.read",
                "crm.schemas.companies.read", "crm.schemas.deals.read", "forms", "content",
                "automation", "sales-email-read"),
        token_auth="body",
    ),
    endpoints=(
        _hubspot_object("contacts", "contacts", "Contacts"),
        _hubspot_object("companies", "companies", "Companies"),
        _hubspot_object("deals", "deals", "Deals"),
        _hubspot_object("tickets", "tickets", "Tickets"),
        _hubspot_object("products", "products", "Products"),
        _hubspot_object("line_items", "line_items", "Line items"),
        _hubspot_object("quotes", "quotes", "Quotes"),
        _hubspot_cursor("forms", "/marketing/v3/forms", "Forms", page_size=50),
        _hubspot_cursor("emails", "/marketing/v3/emails", "Marketing emails"),
        Endpoint("lists", "/crm/v3/lists/search", "lists",
                 Pagination(OFFSET, page_size=500, limit_param="count", offset_param="offset",
                            total_path="total"),
                 method="POST", body={"query": ""}, description="Lists (segments)"),
        _hubspot_cursor("workflows", "/automation/v4/flows", "Workflows"),
        _hubspot_single("pipelines", "/crm/v3/pipelines/deals", "Deal pipelines and stages"),
        _hubspot_single("ticket_pipelines", "/crm/v3/pipelines/tickets",
                        "Ticket pipelines and stages"),
        _hubspot_cursor("owners", "/crm/v3/owners", "Owners", page_size=500),
        _hubspot_single("properties", "/crm/v3/properties/contacts", "Contact properties"),
        _hubspot_single("company_properties", "/crm/v3/properties/companies",
                        "Company properties"),
        _hubspot_single("deal_properties", "/crm/v3/properties/deals", "Deal properties"),
        _hubspot_single("ticket_properties", "/crm/v3/properties/tickets", "Ticket properties"),
        Endpoint("engagements", "/engagements/v1/engagements/paged", "results",
                 Pagination(CURSOR_TOKEN, page_size=250, limit_param="limit", offset_param=None,
                            cursor_param="offset", cursor_path="offset",
                            has_more_path="hasMore"),
                 description="Engagements: calls, emails, meetings, notes and tasks"),
    ),
    test_endpoint="owners",
    rate_limit=RateLimit(10.0, burst=110, notes="OAuth apps: 110 requests per 10 seconds per "
                         "HubSpot account"),
    docs_url="https://developers.hubspot.com/docs/api/overview",
)

# ---------------------------------------------------------------------------------- Google Drive
# files.list over everything the user can see (shared drives included). Google Docs,
# Sheets and Slides have no binary content (alt=media answers 403) and folders none at
# all, so the listing leaves out every application/vnd.google-apps.* type; exporting
# native documents is a separate endpoint to come.

GOOGLE_DRIVE = Platform(
    id="google-drive",
    name="Google Drive",
    categories=("file-storage",),
    auth="oauth2",
    base_url="https://www.googleapis.com/drive/v3",
    auth_header={"Authorization": "Bearer {access_token}"},
    oauth=OAuth(
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",
        scopes=("https://www.googleapis.com/auth/drive.readonly",),
        authorize_params={"access_type": "offline", "prompt": "consent",
                          "include_granted_scopes": "true"},
        token_auth="body",
    ),
    endpoints=(
        Endpoint("files", "/files", "files",
                 Pagination(CURSOR_TOKEN, page_size=1000, limit_param="pageSize",
                            offset_param=None, cursor_param="pageToken",
                            cursor_path="nextPageToken",
                            extra={"q": "trashed = false and not mimeType contains "
                                        "'application/vnd.google-apps.'",
                                   "fields": "nextPageToken,files(id,name,mimeType,size,"
                                             "md5Checksum,createdTime,modifiedTime,parents)",
                                   "supportsAllDrives": "true",
                                   "includeItemsFromAllDrives": "true"}),
                 files=True, download_path="/files/{entry.id}?alt=media&supportsAllDrives=true",
                 description="Files (binary content; Google Docs formats excepted)"),
    ),
    test_endpoint="files",
    rate_limit=RateLimit(10.0, burst=20, notes="12,000 queries per minute per project and per "
                         "user; 403/429 rateLimitExceeded when exceeded"),
    docs_url="https://developers.google.com/workspace/drive/api/reference/rest/v3",
)

# ---------------------------------------------------------------------------------- Dropbox

DROPBOX = Platform(
    id="dropbox",
    name="Dropbox",
    categories=("file-storage",),
    auth="oauth2",
    base_url="https://api.dropboxapi.com/2",
    content_base_url="https://content.dropboxapi.com/2",
    auth_header={"Authorization": "Bearer {access_token}"},
    oauth=OAuth(
        authorize_url="https://www.dropbox.com/oauth2/authorize",
        token_url="https://api.dropboxapi.com/oauth2/token",
        scopes=("account_info.read", "files.metadata.read", "files.content.read"),
        authorize_params={"token_access_type": "offline"},
        token_auth="body",
    ),
    endpoints=(
        Endpoint("files", "/files/list_folder", "entries",
                 Pagination(CURSOR_POST, page_size=2000, limit_param="limit", offset_param=None,
                            cursor_param="cursor", cursor_path="cursor",
                            has_more_path="has_more",
                            continue_path="/files/list_folder/continue"),
                 method="POST",
                 body={"path": "", "recursive": True, "include_deleted": False},
                 files=True, files_where={".tag": "file"},
                 download_path="/files/download", download_method="POST",
                 download_headers={"Dropbox-API-Arg": {"path": "{entry.id}"}},
                 description="Every file, recursively from the root"),
    ),
    test_endpoint="files",
    rate_limit=RateLimit(10.0, burst=10, notes="Per-user limits are not published; 429 with "
                         "Retry-After when exceeded"),
    docs_url="https://www.dropbox.com/developers/documentation/http/documentation",
)

# ---------------------------------------------------------------------------------- Box
# Box lists one folder at a time: the listing starts at the folder setting (0, the root,
# by default) and the engine lists every entry of type "folder" in turn, with folder_id set
# to its id (folders_where / folder_setting).

BOX = Platform(
    id="box",
    name="Box",
    categories=("file-storage",),
    auth="oauth2",
    base_url="https://api.box.com/2.0",
    auth_header={"Authorization": "Bearer {access_token}"},
    fields=(
        Field("folder_id", "Folder to back up", secret=False, required=False,
              pattern=r"[0-9]{1,20}",
              help="The number at the end of the folder's address; every file when empty."),
    ),
    oauth=OAuth(
        authorize_url="https://account.box.com/api/oauth2/authorize",
        token_url="https://api.box.com/oauth2/token",
        scopes=("root_readonly",),
        token_auth="body",
    ),
    endpoints=(
        Endpoint("files", "/folders/{folder_id}/items", "entries",
                 Pagination(MARKER, page_size=1000, limit_param="limit", offset_param=None,
                            cursor_param="marker", cursor_path="next_marker",
                            extra={"usemarker": "true",
                                   "fields": "id,type,name,size,sha1,etag,created_at,"
                                             "modified_at,content_modified_at,parent"}),
                 files=True, files_where={"type": "file"},
                 folders_where={"type": "folder"}, folder_setting="folder_id",
                 download_path="/files/{entry.id}/content",
                 description="Files of the folder and its subfolders"),
    ),
    test_endpoint="files",
    rate_limit=RateLimit(16.0, burst=16, notes="1,000 API requests per minute per user"),
    docs_url="https://developer.box.com/reference/",
)

# ---------------------------------------------------------------------------------- the catalog

CATALOG: dict[str, Platform] = {platform.id: platform for platform in (
    KEAP, STRIPE, MAILCHIMP, ZENDESK, SHOPIFY, GOHIGHLEVEL, ACTIVECAMPAIGN, HUBSPOT,
    GOOGLE_DRIVE, DROPBOX, BOX,
)}


def get_platform(platform_id: str) -> Platform | None:
    return CATALOG.get(platform_id) if isinstance(platform_id, str) else None


_MAILCHIMP_DC = re.compile(r"-(us[0-9]{1,2})$")


def derive_settings(platform: Platform | str, settings: Mapping[str, Any] | None,
                    credentials: Mapping[str, Any] | None) -> dict:
    """The settings with the ones a user need not type filled in (a value the user gave is
    kept): Mailchimp's data centre from its API key, GoHighLevel's location from the
    OAuth token answer (stored with the credentials), Box's root folder."""
    platform_id = platform if isinstance(platform, str) else platform.id
    out = dict(settings or {})
    credentials = credentials or {}

    def missing(name: str) -> bool:
        return out.get(name) in (None, "")

    if platform_id == "mailchimp" and missing("dc"):
        match = _MAILCHIMP_DC.search(str(credentials.get("api_key") or ""))
        if match:
            out["dc"] = match.group(1)
    elif platform_id == "gohighlevel" and missing("locationId"):
        location = credentials.get("locationId") or credentials.get("location_id")
        if isinstance(location, str) and location:
            out["locationId"] = location
    elif platform_id == "box" and missing("folder_id"):
        out["folder_id"] = "0"
    return out
