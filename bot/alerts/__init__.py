"""Crash and outage alerts: incidents read from the Wings sockets, posted to each guild's alert channel."""
