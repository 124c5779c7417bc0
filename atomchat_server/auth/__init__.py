"""Accounts' secrets: password hashing and rules, access tokens, sessions."""
