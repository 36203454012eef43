"""Who may do what: API keys with roles, quotas, and the audit trail."""
