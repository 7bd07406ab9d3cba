"""Model rollout on the device: a versioned model store with atomic switching (``versions``), signed
bundles (``bundle``), downloads and chunked transfers (``fetch``), shadow tests (``shadow``). See README.md."""
