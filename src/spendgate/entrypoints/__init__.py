"""Entry points: the gateway (/v1), the admin API (/admin/v1), the web pages and the CLI."""
