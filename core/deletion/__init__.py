"""Deletion requests: scope → plan → approval → unlearn and verify → close → certificate."""
