"""The Porcupine-style linearizability checker (lands with the checker issue)."""
