"""The upstream side: routing models to providers, the pooled HTTP client, usage extraction, SSE."""
