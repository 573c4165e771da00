"""Accounts and authentication: password hashes, the users file, tokens, tickets, throttling."""
