"""Rasa input channels (loaded by the Rasa server from ``credentials.yml``).

Only the standard library, Rasa and Sanic may be imported here: this package runs in the Rasa
server's venv, not the action server's.
"""
