"""AtomChat: a self-hosted chat server speaking the Matrix client-server API."""

__version__ = "0.1.0"
