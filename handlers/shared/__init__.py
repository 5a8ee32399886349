"""Code several services share: envelope and dispatch, logging, AWS clients, key rules."""
