"""edgeens: distil Restormer into fast hybrids, search them on measured latency, deploy them to phones."""

from edgeens.allocator import keep_freed_memory

keep_freed_memory()
