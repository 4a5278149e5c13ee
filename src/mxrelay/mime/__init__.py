"""Message transforms: iCalendar stripping and envelope-authoritative headers (pure functions)."""
