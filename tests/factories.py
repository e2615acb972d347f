"""Small data factories shared by the domain tests (add yours here, one function each)."""
