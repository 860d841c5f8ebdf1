"""Side-by-side speed and success measurements (not tests): `make bench`."""
