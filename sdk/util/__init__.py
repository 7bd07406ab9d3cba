"""Small helpers shared by several parts of the SDK that have no better home."""
