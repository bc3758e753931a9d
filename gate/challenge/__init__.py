"""The proof-of-work challenge: signed challenges, pass tokens, the page and its solver."""
