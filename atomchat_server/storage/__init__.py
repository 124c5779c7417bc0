"""All SQL lives here, one module per aggregate. Functions take a pool or a
connection (anything with fetch/fetchrow/execute) as their first argument, so
callers choose whether several calls share one transaction."""
