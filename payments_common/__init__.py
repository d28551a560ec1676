"""Runtime pieces both services must agree on: settings, database, tokens, errors, server bootstrap.

No business rules and no ORM models live here; each service owns its tables.
"""
