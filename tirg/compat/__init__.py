"""Compatibility with other implementations: import and export of the original google/tirg checkpoints."""
