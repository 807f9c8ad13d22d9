"""Adapters: the only code that talks to MongoDB (``mongo``); in-memory twins of the same
repositories (``memory``) for tests that need no server."""
