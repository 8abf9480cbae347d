"""Domain-neutral building blocks. Imports nothing else of moorage."""
