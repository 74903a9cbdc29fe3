"""marlshare's library: per-agent layers, sharing strategies, transforms, algorithms and trainer."""
