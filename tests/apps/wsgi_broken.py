"""A module that fails at import: the configuration check reports it."""

raise RuntimeError("wsgi_broken refuses to import")
