"""Remedies that make forgetting hold: SAM and NF4-aware forgetting (robust), UNDO."""
