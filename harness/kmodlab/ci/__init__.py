"""CI support: host checks and ready-made workflows for users' repositories."""
