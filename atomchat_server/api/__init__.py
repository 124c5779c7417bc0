"""Tornado handlers, one module per surface and area. Handlers parse and
validate the request, authenticate, call a service and serialize the result;
they hold no rules of their own."""
