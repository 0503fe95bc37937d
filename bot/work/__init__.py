"""Background work: storing deliveries, folding them into incidents, running jobs."""
