"""Errors the admin use cases raise; the admin API maps them to 404 and 422."""


class NotFound(LookupError):
    pass


class Invalid(ValueError):
    pass
