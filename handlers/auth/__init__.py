"""The auth service: registration, login with lockout, token refresh with rotation and
reuse detection, logout, e-mail verification, password reset and change, the profile,
and the account's API keys (DESIGN.md section 4, issue 5).

Modules: ``routes`` (the service's part of the route table), ``api`` (the Lambda entry
point and the operations), ``store`` (DynamoDB transactions and value conversion),
``onetime`` (single-use e-mailed tokens), ``lockout`` (failed-login counting) and ``keys``
(API keys).
"""
