"""Harnesses that run the assistant (the e2e stack, the scaled deployment, PostgreSQL, the browser)
and its deployment configuration; not part of the importable core (bot/)."""
