"""The pure core: standard library only, no I/O, time from an injected clock."""
