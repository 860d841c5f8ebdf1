"""Files a run logs: the adversarial-set tarball and its manifest (`tarball`,
`manifest`), and the names of every logged file (`names`)."""
