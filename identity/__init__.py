"""Identity: users, roles, tokens, login throttling and record-level access scopes."""
