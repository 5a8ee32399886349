"""Lambda code of the ListBackup backend. No Pulumi imports: packaged from here.

Each service's package holds its entry points and, in ``routes.py``, its part of the route
table; ``handlers.shared`` holds what several services use. A function's bundle carries
only the modules its entry point imports.
"""
