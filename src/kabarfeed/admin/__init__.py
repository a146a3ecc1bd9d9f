"""The newsroom console's use cases: accounts, sessions, the audit log,
configuration editing and the dashboard. The CLI (``kabarfeed admin``) and the
web console (:mod:`kabarfeed.web.admin`) both call these functions; routes
never touch the store directly."""
