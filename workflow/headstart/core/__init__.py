"""What every stage shares: errors, logging, table and tensor files, devices, images, downloads, the
vocabulary of names, metrics and WordNet."""
