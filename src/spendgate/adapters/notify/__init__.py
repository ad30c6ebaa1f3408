"""Alert channels: signed webhooks (aiohttp) and e-mail (SMTP)."""
