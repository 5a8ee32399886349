"""The billing service (DESIGN section 7): the public plan catalog, the account's
subscription, Stripe Checkout and billing portal sessions, cancellation at period end,
invoices, and Stripe's webhook, which moves accounts between plans."""
