"""The sources service: a customer's connections to their platforms (CRUD), their
credentials encrypted at rest, and the connection test.

Modules: ``routes`` (this service's part of the route table), ``api`` (the Lambda entry
point), ``crud`` (list, create, read, update, delete) and ``connection`` (the connection
test through the paging engine). The store itself is ``handlers.shared.sources``, shared
with the OAuth callback and the backup worker.
"""
