"""Custom actions for the Rasa server: thin glue over :mod:`bot`."""
