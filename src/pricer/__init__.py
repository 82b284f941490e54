"""pricer: predict a product price from its text."""
