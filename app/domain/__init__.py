"""The domain: incidents, alerts, linking, correlation and permissions over asyncpg.

Nothing here knows of GraphQL. Functions take the connection (or pool) they work on as the
keyword argument ``conn``; the caller owns the transaction.
"""
