"""The billing service: the public plan catalog (DESIGN section 7); subscriptions, Stripe
checkout, portal, invoices and the webhook come later."""
