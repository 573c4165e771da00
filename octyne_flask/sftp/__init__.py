"""SFTP access to the servers' files, with the same accounts, permissions and path rules as the HTTP file API.

``service.py`` listens and keeps connections bounded; ``login.py`` checks
``<account>.<server>`` logins like ``/login``; ``view.py`` answers each SFTP
request through ``files/`` (no path handling of its own); ``handles.py`` holds
open files, uploads written to a temporary name and renamed on close.
"""
