"""Federation: the server's side of the Matrix server-server API that needs
I/O or keys (the pure rules are in ``events/``)."""
