"""Model prices: genai-prices' bundled data, overridden by the operator's price file."""
