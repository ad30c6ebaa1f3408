"""Implementations of the service ports: storage, upstream HTTP, pricing data, tokenizer."""
