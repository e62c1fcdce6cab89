"""Developer tools that are not part of the product: test harnesses too long for the suite
(`python -m tools.soak`)."""
