"""Infrastructure of the ListBackup backend: one ComponentResource per service.

Dependencies point one way: ``__main__`` -> ``components`` -> ``handlers`` (declarative data
only: route tables, plan catalog). Handlers never import this package.
"""
