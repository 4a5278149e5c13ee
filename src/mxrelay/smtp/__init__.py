"""The SMTP server: protocol engine, session state, DATA reader and relay policy."""
