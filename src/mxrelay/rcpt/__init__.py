"""Recipient-domain validation: address syntax, DNS evidence, verdicts and their cache."""
