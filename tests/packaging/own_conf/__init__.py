"""A user's config dir (a package too, so it also works as `pkg://tests.packaging.own_conf`)."""
