"""Reading live state: one module per service, nothing here changes anything."""
