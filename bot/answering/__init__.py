"""Answering: retrieval over the knowledge base, the decisions and the words of every answer."""
