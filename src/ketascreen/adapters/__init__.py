"""Input adapters: other formats (FHIR R4 bundles, tables) turned into the contract's Intake."""
