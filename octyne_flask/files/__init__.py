"""The file manager's plain-Python core: paths, listing, operations, uploads, archives.

Nothing here imports Flask; failures are raised as ``ApiError`` with the exact
strings of api.md §8 so the blueprints only translate HTTP to calls.
"""
