"""Use cases over the domain and the ports; no framework imports."""
