"""Database plumbing: the connection pool, the migration runner and the
embedded PostgreSQL server."""
