"""gate audit: what gate would have done with a site's access logs."""
