"""Schedules (cron-timed actions on a server) and backups. Plain Python, no Flask."""
