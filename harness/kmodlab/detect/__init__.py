"""The detection matrix: which detector catches which bug (kmodlab detect)."""
